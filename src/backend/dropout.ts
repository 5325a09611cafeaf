// Dropout with counter-based masks (counter-hash.ts): element i of x is kept iff u(seed, i) ≥ rate and then scaled
// by 1/(1 − rate). Unlike tf.dropout, which fills a random tensor on the CPU (on LLaMA-7B LoRA, 224 masks of 4 M
// values per micro-batch), the webgpu backend draws the mask inside one dispatch; other backends run the same
// integer hash in JS, so a seed gives the same mask on every backend. Differentiable: dx = dropout(dy) with the
// same mask, recomputed from (seed, i) rather than stored.
import * as tf from '@tensorflow/tfjs-core';
import { counterHash, counterKeys, keepThreshold } from './counter-hash.js';
import { DROPOUT_KERNEL, registerDropoutKernel, type DropoutAttrs } from './kernels/dropout-program.js';

/**
 * The op's parameters. The scale is the float32 rounding of 1/(1 − rate) and is multiplied in (as tf.dropout
 * does), because float32 multiplication is correctly rounded on every backend and WGSL division is not.
 */
export function dropoutAttrs(rate: number, seed: number): DropoutAttrs {
  return { ...counterKeys(seed >>> 0), threshold: keepThreshold(rate), scale: Math.fround(1 / (1 - rate)) };
}

/** keep[i] of dropout(x, rate, seed) for i < n, from the JS hash (tests and the host path). */
export function dropoutKeepMask(n: number, rate: number, seed: number): Uint8Array {
  const a = dropoutAttrs(rate, seed);
  const keep = new Uint8Array(n);
  for (let i = 0; i < n; i++) keep[i] = counterHash(a.k0, a.k1, i) >>> 8 >= a.threshold ? 1 : 0;
  return keep;
}

function hostDropout(x: tf.Tensor, a: DropoutAttrs): tf.Tensor {
  const values = x.dataSync() as Float32Array;
  const out = new Float32Array(values.length);
  const { k0, k1, threshold, scale } = a;
  for (let i = 0; i < values.length; i++) {
    // A Float32Array store rounds the exact double product once: the float32 product the GPU computes.
    if (counterHash(k0, k1, i) >>> 8 >= threshold) out[i] = values[i]! * scale;
  }
  return tf.tensor(out, x.shape, 'float32');
}

function masked(x: tf.Tensor, a: DropoutAttrs): tf.Tensor {
  if (tf.getBackend() !== 'webgpu') return hostDropout(x, a);
  registerDropoutKernel();
  const flat = tf.reshape(x, [x.size]);
  const y = tf.engine().runKernel(DROPOUT_KERNEL, { x: flat }, a as unknown as tf.NamedAttrMap) as tf.Tensor;
  return tf.reshape(y, x.shape);
}

/**
 * Inverted dropout of float32 x with a mask that depends only on (uint32 of `seed`, flat index): kept elements are
 * x·fround(1/(1 − rate)), dropped ones +0. rate 0 returns a copy of x.
 */
export function dropout<T extends tf.Tensor>(x: T, rate: number, seed: number): T {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate must be in [0, 1), got ${rate}`);
  if (x.dtype !== 'float32') throw new Error(`dropout: x is ${x.dtype}; float32 only`);
  if (x.size >= 2 ** 32) throw new Error(`dropout: ${x.size} elements exceed the 32-bit counter`);
  if (rate === 0) return tf.clone(x);
  const a = dropoutAttrs(rate, seed);
  const f = tf.customGrad(((xx: tf.Tensor) => ({
    value: masked(xx, a),
    gradFunc: (dy: tf.Tensor) => masked(dy, a),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as T;
}
