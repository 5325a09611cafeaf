// Test doubles for evaluation: a bigram "model" whose log-probs are a fixed table, and a character tokenizer.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { Tokenizer } from '../../src/model/types.js';
import type { LogProbModel } from '../../src/eval/log-probs.js';

/** A deterministic row-stochastic table: logTable[prev * V + next] = log p(next | prev). */
export function bigramTable(vocab: number, seed = 1): Float64Array {
  const table = new Float64Array(vocab * vocab);
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let p = 0; p < vocab; p++) {
    let z = 0;
    for (let n = 0; n < vocab; n++) z += table[p * vocab + n] = Math.exp(3 * rand());
    for (let n = 0; n < vocab; n++) table[p * vocab + n] = Math.log(table[p * vocab + n]! / z);
  }
  return table;
}

export class BigramModel implements LogProbModel {
  calls = 0;
  shapes: number[][] = [];
  private readonly table: tf.Tensor2D;
  /** Present only when constructed with `withLogits`: logits[b, t] = log p(· | ids[b, t]). */
  logits?: (ids: tf.Tensor2D) => tf.Tensor3D;
  logitCalls: number[][] = [];
  constructor(readonly vocab: number, readonly logTable: Float64Array, withLogits = false) {
    this.table = tf.tensor2d(Float32Array.from(logTable), [vocab, vocab]);
    if (withLogits) {
      this.logits = (ids) => {
        this.logitCalls.push(ids.shape);
        const [b, t] = ids.shape;
        return tf.tidy(() => tf.reshape(tf.gather(this.table, tf.reshape(ids, [-1])), [b, t, this.vocab]) as tf.Tensor3D);
      };
    }
  }
  tokenLogProbs(ids: tf.Tensor2D): tf.Tensor2D {
    this.calls++;
    this.shapes.push(ids.shape);
    const [b, t] = ids.shape;
    return tf.tidy(() => {
      const prev = tf.reshape(tf.slice(ids, [0, 0], [b, t - 1]), [-1]);
      const next = tf.reshape(tf.slice(ids, [0, 1], [b, t - 1]), [-1]) as tf.Tensor1D;
      const rows = tf.gather(this.table, prev);
      const picked = tf.sum(tf.mul(rows, tf.oneHot(next, this.vocab)), 1);
      return tf.reshape(picked, [b, t - 1]) as tf.Tensor2D;
    });
  }
  /** log p(next | prev) in float64, for expected values. */
  logProb(prev: number, next: number): number {
    return this.logTable[prev * this.vocab + next]!;
  }
  dispose(): void {
    this.table.dispose();
  }
}

/** One token per UTF-16 unit, id = 3 + (code % (vocab - 3)); BOS 1, EOS 2. */
export function charTokenizer(vocab = 64): Tokenizer {
  return {
    bosId: 1,
    eosId: 2,
    vocabSize: vocab,
    encode: (text) => [...text].map((c) => 3 + (c.codePointAt(0)! % (vocab - 3))),
    decode: () => {
      throw new Error('not used');
    },
    files: () => new Map(),
  };
}
