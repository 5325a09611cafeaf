// The trainer on a toy least-squares task: gradient accumulation equals one big batch, data order is seeded,
// the best validation checkpoint is restored, and an interrupted run resumes to identical parameters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '../../src/model/index.js'; // registers tfjs gradients
import { StageCancelled } from '../../src/errors/lopper-error.js';
import type { MicroBatch, TrainExample } from '../../src/data/packing.js';
import { stepIndices, train, type TrainerConfig, type TrainTask } from '../../src/train/trainer.js';
import { tempDir } from '../lora/helpers.js';

/** Example [x1, x2, y] → loss mean over rows of (w·x − y)²; every row has 2 "targets" so micro means average exactly. */
function toyTask(init: number[]): TrainTask & { w: tf.Variable } {
  const w = tf.variable(tf.tensor1d(init), true, `toy-${Math.random()}`);
  return {
    w,
    trainable: new Map([['w', w]]),
    loss: (batch: MicroBatch) => tf.tidy(() => {
      const rows = tf.tensor2d(Float32Array.from(batch.ids), [batch.rows, batch.seqLen]);
      const x = tf.slice(rows, [0, 0], [batch.rows, 2]);
      const y = tf.reshape(tf.slice(rows, [0, 2], [batch.rows, 1]), [batch.rows]);
      const pred = tf.sum(tf.mul(x, w), 1);
      return tf.mean(tf.square(tf.sub(pred, y))) as tf.Scalar;
    }),
  };
}

const example = (x1: number, x2: number, y: number): TrainExample => ({ ids: [x1, x2, y], targets: Uint8Array.from([0, 1, 1]) });
const data = Array.from({ length: 24 }, (_, i) => example(i % 5, (i * 3) % 7, 2 * (i % 5) - (i * 3) % 7));

function config(over: Partial<TrainerConfig> = {}): TrainerConfig {
  return {
    name: 'toy', totalSteps: 12, batchSize: 8, microBatchSize: 8, seed: 7, padId: 0,
    schedule: { kind: 'linear', lr: 0.05, warmupSteps: 2, totalSteps: 12 },
    adam: { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 },
    ...over,
  };
}

test.before(async () => { await tf.setBackend('cpu'); });

test('seeded order: every epoch is a permutation, the same for the same seed', () => {
  const a = Array.from({ length: 6 }, (_, s) => stepIndices(s, 4, 12, 3)).flat();
  const b = Array.from({ length: 6 }, (_, s) => stepIndices(s, 4, 12, 3)).flat();
  assert.deepEqual(a, b);
  assert.deepEqual([...a.slice(0, 12)].sort((x, y) => x - y), Array.from({ length: 12 }, (_, i) => i));
  assert.deepEqual([...a.slice(12)].sort((x, y) => x - y), Array.from({ length: 12 }, (_, i) => i));
  assert.notDeepEqual(a.slice(0, 12), a.slice(12), 'each epoch reshuffles');
  assert.notDeepEqual(Array.from({ length: 3 }, (_, s) => stepIndices(s, 4, 12, 4)).flat(), a.slice(0, 12));
});

test('gradient accumulation (micro 2 × 4) equals one batch of 8; clipping applies to the summed gradient', async () => {
  const one = toyTask([0, 0]);
  const accumulated = toyTask([0, 0]);
  const schedule = { kind: 'linear' as const, lr: 0.3, warmupSteps: 2, totalSteps: 12 };
  const r1 = await train(one, data, [], config({ gradClip: 5, schedule }));
  const r2 = await train(accumulated, data, [], config({ gradClip: 5, microBatchSize: 2, schedule }));
  const [w1, w2] = [await one.w.data(), await accumulated.w.data()];
  for (let i = 0; i < 2; i++) assert.ok(Math.abs(w1[i]! - w2[i]!) < 1e-5, `w[${i}] ${w1[i]} vs ${w2[i]}`);
  r1.log.forEach((r, i) => { if ('loss' in r) assert.ok(Math.abs(r.loss - (r2.log[i] as { loss: number }).loss) < 1e-4); });
  assert.ok(r1.finalLoss < (r1.log[0] as { loss: number }).loss / 4, 'the toy problem is being solved');
  one.w.dispose(); accumulated.w.dispose();
});

test('best validation checkpoint is restored at the end', async () => {
  // Training pulls w toward (2, −1); validation wants (1, −0.5): its loss falls, then rises again.
  const val = Array.from({ length: 8 }, (_, i) => example(i % 5, (i * 3) % 7, (i % 5) - 0.5 * ((i * 3) % 7)));
  const task = toyTask([0, 0]);
  const result = await train(task, data, val, config({ totalSteps: 40, evalEvery: 1, schedule: { kind: 'constant', lr: 0.05, warmupSteps: 0, totalSteps: 40 } }));
  const vals = result.log.filter((r): r is { step: number; val_loss: number } => 'val_loss' in r);
  assert.equal(vals[0]!.step, 0);
  const best = vals.reduce((a, b) => (b.val_loss < a.val_loss ? b : a));
  assert.equal(result.bestStep, best.step);
  assert.ok(best.step > 0 && best.step < 40, `best step ${best.step}`);
  assert.ok(vals.at(-1)!.val_loss > best.val_loss, 'validation got worse after the best step');
  // The restored parameters give the best validation loss.
  const { evaluateLoss } = await import('../../src/train/trainer.js');
  assert.ok(Math.abs(await evaluateLoss(task, val, 8, 0) - best.val_loss) < 1e-5);
  task.w.dispose();
});

test('cancel writes a checkpoint; the rerun resumes and ends bit-identical to an uninterrupted run', async () => {
  const dir = path.join(tempDir('trainer'), 'ckpt');
  const straight = toyTask([0.5, 0.5]);
  const r0 = await train(straight, data, data.slice(0, 4), config({ evalEvery: 3, saveEvery: 4 }));
  const interrupted = toyTask([0.5, 0.5]);
  const controller = new AbortController();
  await assert.rejects(train(interrupted, data, data.slice(0, 4), config({ evalEvery: 3, saveEvery: 4, checkpointDir: dir }), {
    signal: controller.signal, onRecord: (r) => { if ('loss' in r && r.step === 5) controller.abort(); },
  }), StageCancelled);
  assert.ok(existsSync(path.join(dir, 'checkpoint-5')), 'checkpoint at the cancelled step');
  assert.ok(!existsSync(path.join(dir, 'checkpoint-4')), 'older checkpoints are removed');
  const fresh = toyTask([123, -7]); // a new process: parameters come from the checkpoint
  const r1 = await train(fresh, data, data.slice(0, 4), config({ evalEvery: 3, saveEvery: 4, checkpointDir: dir }));
  assert.equal(r1.resumedFrom, 5);
  assert.deepEqual(await fresh.w.data(), await straight.w.data());
  const strip = (log: typeof r0.log) => log.map((r) => ('loss' in r ? { ...r, tokens_per_second: 0 } : r));
  assert.deepEqual(strip(r1.log), strip(r0.log));
  assert.ok(!existsSync(dir), 'checkpoints are removed after a completed run');
  // A checkpoint from other settings is never resumed.
  const other = toyTask([0.5, 0.5]);
  const c2 = new AbortController();
  await assert.rejects(train(other, data, [], config({ checkpointDir: dir }), { signal: c2.signal, onRecord: (r) => { if ('loss' in r && r.step === 3) c2.abort(); } }), StageCancelled);
  const r3 = await train(toyTask([0.5, 0.5]), data, [], config({ checkpointDir: dir, seed: 8 }));
  assert.equal(r3.resumedFrom, null);
  [straight, interrupted, fresh, other].forEach((t) => t.w.dispose());
});
