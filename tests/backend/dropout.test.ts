// Counter-based dropout (src/backend/dropout.ts): on the cpu backend its statistics, scaling, gradient and tensor
// hygiene; on WebGPU (lavapipe here) masks identical to the cpu backend's for the same seed, also past 65,535
// workgroups, and the same gradient. The WebGPU part skips where Dawn finds no adapter.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { dropout, dropoutKeepMask } from '../../src/backend/dropout.js';
import { DROPOUT_KERNEL } from '../../src/backend/kernels/dropout-program.js';
import { counterHash, counterKeys, keepThreshold } from '../../src/backend/counter-hash.js';
import { registerGradients } from '../../src/model/gradients.js';
import { fillNormal, mulberry32 } from '../../src/seeded-random.js';
import { webGpuSession } from './webgpu-session.js';

const session = webGpuSession('float32');
registerGradients();

async function onBackend<T>(name: string, f: () => Promise<T>): Promise<T> {
  const prev = tf.getBackend();
  await tf.setBackend(name);
  try {
    return await f();
  } finally {
    await tf.setBackend(prev);
  }
}

function normals(n: number, seed: number): Float32Array {
  return fillNormal(new Float32Array(n), mulberry32(seed));
}

/** Host copy of dropout(x, rate, seed) and of its gradient for the upstream gradient `probe`, on the active backend. */
async function forwardAndGrad(x: Float32Array, shape: number[], rate: number, seed: number, probe: Float32Array): Promise<[Float32Array, Float32Array]> {
  const before = tf.memory().numTensors;
  const xt = tf.tensor(x, shape), pt = tf.tensor(probe, shape);
  const y = dropout(xt, rate, seed);
  const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(dropout(v, rate, seed), pt)))(xt);
  const out: [Float32Array, Float32Array] = [(await y.data()) as Float32Array, (await g.data()) as Float32Array];
  tf.dispose([xt, pt, y, g]);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  return out;
}

function assertMasked(actual: Float32Array, x: Float32Array, keep: Uint8Array, rate: number, what: string): void {
  const scale = Math.fround(1 / (1 - rate));
  for (let i = 0; i < x.length; i++) {
    const expected = keep[i] ? Math.fround(x[i]! * scale) : 0;
    if (!Object.is(actual[i], expected)) assert.fail(`${what}[${i}] = ${actual[i]}, expected ${expected} (keep ${keep[i]})`);
  }
}

describe('dropout on the cpu backend', () => {
  it('keeps 1 − rate of 1e6 elements within a binomial bound, independently across seeds and positions', async () => {
    await onBackend('cpu', async () => {
      const n = 1_000_000, rate = 0.1;
      const a = dropoutKeepMask(n, rate, 1234), b = dropoutKeepMask(n, rate, 1235);
      const p = 1 - keepThreshold(rate) / 2 ** 24;
      const bound = (q: number) => 6 * Math.sqrt(n * q * (1 - q));
      const kept = a.reduce((s, k) => s + k, 0);
      assert.ok(Math.abs(kept - n * p) < bound(p), `kept ${kept} of ${n}`);
      // Two seeds, and the two halves of one mask, disagree where independent masks would: 2p(1 − p).
      let seedDiff = 0, halfDiff = 0;
      for (let i = 0; i < n; i++) seedDiff += a[i]! ^ b[i]!;
      for (let i = 0; i < n / 2; i++) halfDiff += a[i]! ^ a[i + n / 2]!;
      assert.ok(Math.abs(seedDiff - n * 2 * p * (1 - p)) < bound(2 * p * (1 - p)), `seeds differ at ${seedDiff}`);
      assert.ok(Math.abs(halfDiff - n / 2 * 2 * p * (1 - p)) < bound(2 * p * (1 - p)), `halves differ at ${halfDiff}`);
    });
  });

  it('scales kept elements by fround(1/(1 − rate)) exactly, zeroes the rest, and the gradient is dy·mask/(1 − rate)', async () => {
    await onBackend('cpu', async () => {
      const shape = [37, 53], n = 37 * 53, rate = 0.3;
      const x = normals(n, 1), probe = normals(n, 2);
      const [y, g] = await forwardAndGrad(x, shape, rate, 77, probe);
      const keep = dropoutKeepMask(n, rate, 77);
      assertMasked(y, x, keep, rate, 'y');
      assertMasked(g, probe, keep, rate, 'dx');
    });
  });

  it('rate 0 is the identity; only the uint32 of the seed matters; bad rates are refused', async () => {
    await onBackend('cpu', async () => {
      const x = tf.tensor(normals(1000, 3));
      const y = dropout(x, 0, 9);
      assert.deepEqual(await y.data(), await x.data());
      assert.deepEqual(dropoutKeepMask(1000, 0.5, 2 ** 32 + 5), dropoutKeepMask(1000, 0.5, 5));
      assert.notDeepEqual(dropoutKeepMask(1000, 0.5, 6), dropoutKeepMask(1000, 0.5, 5));
      assert.throws(() => dropout(x, 1, 0), /rate/);
      assert.throws(() => dropout(x, -0.1, 0), /rate/);
      tf.dispose([x, y]);
    });
  });

  it('draws inside tf.tidy without leaking', async () => {
    await onBackend('cpu', async () => {
      const before = tf.memory().numTensors;
      const s = tf.tidy(() => tf.sum(dropout(tf.ones([64, 64]), 0.5, 1)));
      assert.equal(tf.memory().numTensors, before + 1);
      s.dispose();
    });
  });

  it('hashes are fixed (a change would silently change every recorded run)', () => {
    const { k0, k1 } = counterKeys(0), last = counterKeys(0xffffffff);
    assert.deepEqual([counterHash(k0, k1, 0), counterHash(k0, k1, 1), counterHash(last.k0, last.k1, 123456)],
      GOLDEN_HASHES);
  });
});

describe('dropout on WebGPU', () => {
  it('gives the cpu backend\'s values and gradients for the same seed (also past 65,535 workgroups)', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const cases: Array<{ shape: number[]; rate: number; seed: number }> = [
      { shape: [3, 5, 7], rate: 0.05, seed: 1 },
      { shape: [256, 1024], rate: 0.5, seed: 0xdeadbeef },
      // 8.4 M elements: more than 65,535 workgroups of 128 threads, so tfjs folds the dispatch into 2-D.
      { shape: [2100, 4000], rate: 0.1, seed: 42 },
    ];
    for (const { shape, rate, seed } of cases) {
      const n = shape.reduce((a, d) => a * d, 1);
      const x = normals(n, seed & 0xffff), probe = normals(n, 7);
      const [gy, gg] = await forwardAndGrad(x, shape, rate, seed, probe);
      const [cy, cg] = await onBackend('cpu', () => forwardAndGrad(x, shape, rate, seed, probe));
      const keep = dropoutKeepMask(n, rate, seed);
      assertMasked(gy, x, keep, rate, `webgpu y ${shape}`);
      assertMasked(gg, probe, keep, rate, `webgpu dx ${shape}`);
      assert.deepEqual(gy, cy);
      assert.deepEqual(gg, cg);
    }
  });

  it('is one LopperDropout dispatch forward and one backward, with no random kernels', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    // tf.profile does not list kernels run during backprop, so count LopperDropout calls through a wrapper.
    const x = tf.ones([512, 512]);
    dropout(x, 0.2, 3).dispose();
    const kernel = tf.getKernel(DROPOUT_KERNEL, 'webgpu')!;
    let calls = 0;
    tf.unregisterKernel(DROPOUT_KERNEL, 'webgpu');
    tf.registerKernel({ ...kernel, kernelFunc: (args) => { calls++; return kernel.kernelFunc(args); } });
    try {
      const info = await tf.profile(() => tf.grad((v: tf.Tensor) => tf.sum(dropout(v, 0.2, 3)))(x));
      assert.equal(calls, 2);
      assert.ok(!info.kernelNames.some((k) => /Random/.test(k)), info.kernelNames.join());
      tf.dispose(info.result as tf.Tensor);
    } finally {
      tf.unregisterKernel(DROPOUT_KERNEL, 'webgpu');
      tf.registerKernel(kernel);
      x.dispose();
    }
  });
});

const GOLDEN_HASHES = [1336613536, 510349731, 2602725401];
