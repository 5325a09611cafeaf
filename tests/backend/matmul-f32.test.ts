// The float32 tiled matmul (x·Wᵀ of linear layers) against a float64 host product: ragged tiles, thin and K-short
// products, and the BatchMatMul routing (covered shapes go to the kernel, others to tfjs, both equal to the reference).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { coversF32MatMul, f32MatMulTensors, splitCount } from '../../src/backend/kernels/matmul-f32.js';
import { mulberry32 } from '../../src/seeded-random.js';
import { webGpuSession } from './webgpu-session.js';

const session = webGpuSession('float32');

function random(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => rand() * 2 - 1);
}

/** max |got − ref| ÷ (|a|·|b| summed over k, the scale of float32 rounding) over all outputs. */
function worstError(got: Float32Array, a: Float32Array, b: Float32Array, M: number, N: number, K: number): number {
  let worst = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let ref = 0;
      let scale = 0;
      for (let k = 0; k < K; k++) {
        ref += a[m * K + k]! * b[n * K + k]!;
        scale += Math.abs(a[m * K + k]! * b[n * K + k]!);
      }
      worst = Math.max(worst, Math.abs(got[m * N + n]! - ref) / scale);
    }
  }
  return worst;
}

describe('float32 tiled matmul (WebGPU)', () => {
  for (const [M, N, K] of [[1, 4, 4], [128, 128, 16], [130, 200, 36], [64, 129, 20], [257, 131, 260], [5, 300, 1028]] as const) {
    it(`[${M}, ${K}]·[${N}, ${K}]ᵀ equals the float64 product to float32 rounding`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      const a = random(M * K, M * 7 + K);
      const b = random(N * K, N * 13 + K);
      const at = tf.tensor2d(a, [M, K]);
      const bt = tf.tensor2d(b, [N, K]);
      const y = f32MatMulTensors(at, bt);
      try {
        assert.deepEqual(y.shape, [M, N]);
        const err = worstError((await y.data()) as Float32Array, a, b, M, N, K);
        assert.ok(err < 1e-6, `relative error ${err}`);
      } finally {
        tf.dispose([at, bt, y]);
      }
    });
  }

  for (const [M, N, K, splits] of [[130, 200, 1028, 4], [64, 129, 260, 3], [5, 40, 36, 4]] as const) {
    it(`[${M}, ${K}]·[${N}, ${K}]ᵀ split in ${splits} K ranges (ragged, a range past K) equals the float64 product`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      const a = random(M * K, M * 3 + K);
      const b = random(N * K, N * 5 + K);
      const at = tf.tensor2d(a, [M, K]);
      const bt = tf.tensor2d(b, [N, K]);
      const before = tf.memory().numTensors;
      const y = f32MatMulTensors(at, bt, splits);
      try {
        assert.equal(tf.memory().numTensors, before + 1, 'only the product is left');
        assert.deepEqual(y.shape, [M, N]);
        const err = worstError((await y.data()) as Float32Array, a, b, M, N, K);
        assert.ok(err < 1e-6, `relative error ${err}`);
      } finally {
        tf.dispose([at, bt, y]);
      }
    });
  }

  it('under-filled products split K until about two workgroups per H200 SM, never below 256-deep ranges', () => {
    assert.equal(splitCount(512, 4096, 4096), 4); // a perplexity batch of 4 × 128: 128 tiles
    assert.equal(splitCount(512, 1024, 4096), 16); // its k/v projections: 32 tiles
    assert.equal(splitCount(4096, 14336, 4096), 1);
    assert.equal(splitCount(128, 1024, 4096), 16); // 8 tiles, limited by the 256-deep ranges
    assert.equal(splitCount(512, 4096, 300), 1);
  });

  it('tf.matMul routes big x·Wᵀ products to the kernel and everything else to tfjs, with equal results', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const [M, N, K] = [1024, 1536, 64];
    const a = tf.tensor2d(random(M * K, 1), [M, K]);
    const b = tf.tensor2d(random(N * K, 2), [N, K]);
    assert.ok(coversF32MatMul(a, b, false, true));
    assert.ok(!coversF32MatMul(a, b, false, false) && !coversF32MatMul(b, a, true, false));
    const viaMatMul = tf.matMul(a, b, false, true);
    const viaTfjs = tf.matMul(a, tf.transpose(b), false, false); // NN: tfjs's own kernel
    try {
      const [x, y] = [(await viaMatMul.data()) as Float32Array, (await viaTfjs.data()) as Float32Array];
      let worst = 0;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
      assert.ok(worst < 1e-4, `kernel and tfjs differ by ${worst}`);
    } finally {
      tf.dispose([a, b, viaMatMul, viaTfjs]);
    }
  });

  it('does not take K that is not a multiple of 4, batched or transposed-A products', () => {
    const info = (shape: number[]) => ({ shape, dtype: 'float32' }) as unknown as tf.TensorInfo;
    assert.equal(coversF32MatMul(info([256, 514]), info([512, 514]), false, true), false);
    assert.equal(coversF32MatMul(info([2, 256, 512]), info([512, 512]), false, true), false);
    assert.equal(coversF32MatMul(info([512, 256]), info([512, 512]), true, true), false);
  });
});
