// The one thing evaluation asks of a model: log p of each next token of a batch of id rows. Perplexity and
// zero-shot scoring go through `batchTokenLogProbs`, so a fake model in tests exercises the same code path.
import * as tf from '@tensorflow/tfjs-core';
import { boundGpuPool } from '../backend/pool.js';
import type { TokenLayout } from '../model/llama.js';
import { batchArrays, type PackedRow } from './packing.js';

export interface LogProbModel {
  /** ids [B, T] int32 → [B, T-1]: log p(ids[b, t+1] | ids[b, ..t]). */
  tokenLogProbs(ids: tf.Tensor2D): tf.Tensor2D;
  /** ids [B, T] → logits [B, T, V]. Optional: lets zero-shot score one-token continuations from one context pass. */
  logits?(ids: tf.Tensor2D): tf.Tensor3D;
  /** ids, targets [B, T] → log p(targets[b, t] | what ids[b, t] sees under the layout). Optional: lets zero-shot pack a question's choices in one row. */
  targetLogProbs?(ids: tf.Tensor2D, targets: tf.Tensor2D, opts: { layout: TokenLayout }): tf.Tensor2D;
}

/**
 * Runs `rows` (all of one length T ≥ 2) through the model and returns the [B, T-1] log-probs on the host,
 * row-major. Reads back with `await data()` (WebGPU cannot read synchronously in Node) and leaves no tensor behind.
 */
export async function batchTokenLogProbs(model: LogProbModel, rows: readonly ArrayLike<number>[]): Promise<Float32Array> {
  const batch = rows.length;
  const length = rows[0]!.length;
  const flat = new Int32Array(batch * length);
  rows.forEach((row, b) => {
    if (row.length !== length) throw new Error(`batchTokenLogProbs: row ${b} has ${row.length} ids, expected ${length}`);
    flat.set(row, b * length);
  });
  const ids = tf.tensor2d(flat, [batch, length], 'int32');
  let out: tf.Tensor2D | undefined;
  try {
    out = model.tokenLogProbs(ids);
    if (out.shape[0] !== batch || out.shape[1] !== length - 1) {
      throw new Error(`tokenLogProbs returned shape [${out.shape}] for ids [${batch}, ${length}]`);
    }
    return (await out.data()) as Float32Array;
  } finally {
    ids.dispose();
    out?.dispose();
    await boundGpuPool();
  }
}

/**
 * Log-probabilities of every vocabulary entry after `rows[b][0..positions[b]]`: [B][V] on the host. Rows are
 * right-padded to one length (causal, so padding after a position does not change it). Needs `model.logits`.
 */
export async function nextTokenLogProbs(model: LogProbModel, rows: readonly ArrayLike<number>[], positions: readonly number[]): Promise<Float32Array[]> {
  if (!model.logits) throw new Error('nextTokenLogProbs: the model has no logits()');
  const batch = rows.length;
  const length = Math.max(...rows.map((r) => r.length));
  const flat = new Int32Array(batch * length);
  rows.forEach((row, b) => flat.set(Array.from(row), b * length));
  const ids = tf.tensor2d(flat, [batch, length], 'int32');
  let out: tf.Tensor2D | undefined;
  try {
    out = tf.tidy(() => {
      const logits = model.logits!(ids);
      const vocab = logits.shape[2];
      const picked = positions.map((p, b) => tf.reshape(tf.slice(logits, [b, p, 0], [1, 1, vocab]), [1, vocab]));
      return tf.logSoftmax(tf.concat(picked, 0)) as tf.Tensor2D;
    });
    const data = (await out.data()) as Float32Array;
    const vocab = out.shape[1];
    return rows.map((_, b) => data.subarray(b * vocab, (b + 1) * vocab));
  } finally {
    ids.dispose();
    out?.dispose();
    await boundGpuPool();
  }
}

/** Σ target log-probabilities of each request packed in `rows` (padded to `length`), in one forward pass. Needs `model.targetLogProbs`. */
export async function packedScores(model: LogProbModel, rows: readonly PackedRow[], length: number, padId: number): Promise<number[][]> {
  if (!model.targetLogProbs) throw new Error('packedScores: the model has no targetLogProbs()');
  const { ids: idData, targets: targetData, positions, segments } = batchArrays(rows, length, padId);
  const shape: [number, number] = [rows.length, length];
  const ids = tf.tensor2d(idData, shape, 'int32');
  const targets = tf.tensor2d(targetData, shape, 'int32');
  let out: tf.Tensor2D | undefined;
  try {
    out = model.targetLogProbs(ids, targets, { layout: { positions, segments } });
    const logProbs = (await out.data()) as Float32Array;
    return rows.map((row, b) => row.scored.map((indices) => indices.reduce((sum, i) => sum + logProbs[b * length + i]!, 0)));
  } finally {
    ids.dispose();
    targets.dispose();
    out?.dispose();
    await boundGpuPool();
  }
}
