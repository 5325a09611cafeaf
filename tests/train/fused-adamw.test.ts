// The one-dispatch WebGPU AdamW step (kernels/fused-adamw.ts) against AdamW's composite tfjs ops on the same device:
// parameters, moments after every step (ragged sizes, scalar and vec4 kernels, with and without weight decay, a
// per-name decay filter), dispatches per step, tensor leaks, state()/loadState() and the cases where the step must
// not write in place. The device here may be lavapipe (float32): the tests switch the fused kernels on themselves.
// Skips where Dawn finds no adapter.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { assertNoDeviceError } from '../../src/backend/webgpu.js';
import { setFusedOpsEnabled } from '../../src/backend/kernels/fused-ops.js';
import { fusedAdamWActive } from '../../src/backend/kernels/fused-adamw.js';
import { AdamW, type AdamWOptions } from '../../src/train/adamw.js';
import { fillNormal, mulberry32 } from '../../src/seeded-random.js';
import { webGpuSession } from '../backend/webgpu-session.js';

/**
 * max |fused − composite| / max |composite| accepted for p, m and v after each step. Both evaluate the same float32
 * expression in the same order; only the compiler's freedom (fma contraction, division and sqrt to a few ulp) differs.
 */
const REL_BOUND = 1e-6;
/**
 * The same for each step's update p_t − p_{t−1}, which the bound above barely sees (updates are ~1e-2 of |p|). Looser
 * because the difference of two float32 parameters carries their rounding: ulp(|p| ≈ 4) / |Δp| ≈ 1e-5.
 */
const UPDATE_REL_BOUND = 1e-4;

const session = webGpuSession('float32', { teardown: () => setFusedOpsEnabled(false) });

let serial = 0;

function hostRandom(shape: number[], seed: number, scale = 1): Float32Array {
  const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
  fillNormal(data, mulberry32(seed), scale);
  return data;
}

function relativeError(actual: Float32Array, expected: Float32Array): number {
  assert.equal(actual.length, expected.length);
  let diff = 0, ref = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(actual[i]!)) return Infinity;
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    ref = Math.max(ref, Math.abs(expected[i]!));
  }
  return ref === 0 ? diff : diff / ref;
}

const OPTIONS: AdamWOptions = { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 };

interface Snapshot { params: Map<string, Float32Array>; moments: Map<string, Float32Array> }

/**
 * Builds parameters of `shapes` from fixed seeds, takes `steps` AdamW steps with seeded gradients (gradient scale
 * varying by step so v is not a multiple of m²) and returns host copies of p, m and v after every step.
 */
async function runSteps(fused: boolean, shapes: number[][], options: AdamWOptions, steps: number): Promise<Snapshot[]> {
  setFusedOpsEnabled(fused);
  const params = new Map<string, tf.Variable>();
  shapes.forEach((shape, i) => params.set(`w${i}`, tf.variable(tf.tensor(hostRandom(shape, 100 + i), shape), true, `fused-adamw-${serial++}`)));
  const opt = new AdamW(params, options);
  const out: Snapshot[] = [];
  try {
    assert.equal(fusedAdamWActive(), fused);
    for (let s = 0; s < steps; s++) {
      const grads = new Map([...params].map(([name, p], i) => [name, tf.tensor(hostRandom(p.shape, 1000 * s + i, 0.5 + s), p.shape)] as const));
      opt.step(grads, 1e-2 * (s + 1));
      tf.dispose([...grads.values()]);
      const state = await opt.state();
      const snapshot: Snapshot = { params: new Map(), moments: new Map() };
      for (const [name, p] of params) snapshot.params.set(name, (await p.data()) as Float32Array);
      for (const [name, t] of state.tensors) snapshot.moments.set(name, t.data);
      out.push(snapshot);
    }
  } finally {
    opt.dispose();
    tf.dispose([...params.values()]);
    setFusedOpsEnabled(false);
  }
  return out;
}

describe('fused AdamW step', () => {
  // vec4 kernel ([8, 4096], [4096, 8]), scalar kernel (1000 is a multiple of 4 but [3, 5] and [1001] are not), and one
  // element.
  const shapes = [[8, 4096], [4096, 8], [1000], [3, 5], [1001], [1]];
  const cases: Array<[string, AdamWOptions]> = [
    ['weight decay 0.1', OPTIONS],
    ['no weight decay', { ...OPTIONS, weightDecay: 0 }],
    ['decay on matrices only', { ...OPTIONS, decays: (name) => name === 'w0' || name === 'w1' }],
  ];
  for (const [label, options] of cases) {
    it(`matches the composite step for 5 steps (${label})`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      const composite = await runSteps(false, shapes, options, 5);
      const fused = await runSteps(true, shapes, options, 5);
      let worst = 0, worstUpdate = 0;
      composite.forEach((expected, step) => {
        shapes.forEach((shape, i) => {
          const name = `w${i}`;
          const prevWant = step === 0 ? hostRandom(shape, 100 + i) : composite[step - 1]!.params.get(name)!;
          const prevGot = step === 0 ? prevWant : fused[step - 1]!.params.get(name)!;
          const want = expected.params.get(name)!.map((x, j) => x - prevWant[j]!);
          const got = fused[step]!.params.get(name)!.map((x, j) => x - prevGot[j]!);
          const e = relativeError(got, want);
          worstUpdate = Math.max(worstUpdate, e);
          assert.ok(e <= UPDATE_REL_BOUND, `step ${step + 1} update of ${name}: relative error ${e} > ${UPDATE_REL_BOUND}`);
        });
        for (const [kind, map] of [['p', 'params'], ['', 'moments']] as const) {
          for (const [name, want] of expected[map]) {
            const e = relativeError(fused[step]![map].get(name)!, want);
            worst = Math.max(worst, e);
            assert.ok(e <= REL_BOUND, `step ${step + 1} ${kind}${name}: relative error ${e} > ${REL_BOUND}`);
          }
        }
      });
      t.diagnostic(`${label}: worst relative error over p, m, v and 5 steps ${worst.toExponential(2)}, `
        + `over the updates ${worstUpdate.toExponential(2)}`);
      await assertNoDeviceError('fused adamw test');
    });
  }

  it('covers every element past 65,535 workgroups (2-D dispatch)', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    // 65,535 · 256 + 3 elements: the scalar kernel needs 65,536 workgroups, one more than a dimension allows.
    const shapes = [[65_535 * 256 + 3]];
    const composite = await runSteps(false, shapes, OPTIONS, 1);
    const [fused] = await runSteps(true, shapes, OPTIONS, 1);
    const init = hostRandom(shapes[0]!, 100);
    for (const map of ['params', 'moments'] as const) {
      for (const [name, want] of composite[0]![map]) {
        const got = fused![map].get(name)!;
        const e = relativeError(got, want);
        assert.ok(e <= REL_BOUND, `${name}: relative error ${e} > ${REL_BOUND}`);
        // Elements no workgroup reached keep their old value (p) or zero (m, v) yet pass the bound above.
        const old = map === 'params' ? init : new Float32Array(got.length);
        for (let i = got.length - 300; i < got.length; i++) assert.notEqual(got[i], old[i], `${name}[${i}] was not updated`);
      }
    }
    await assertNoDeviceError('fused adamw 2-D dispatch test');
  });

  it('records one dispatch per parameter, no tfjs program, and leaks no tensors', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    setFusedOpsEnabled(true);
    const shapes = [[8, 4096], [4096, 8], [3, 5], [1001]];
    const params = new Map(shapes.map((shape, i) => [`w${i}`, tf.variable(tf.tensor(hostRandom(shape, i), shape), true, `fused-adamw-${serial++}`)] as const));
    const opt = new AdamW(params, OPTIONS);
    const backend = tf.backend() as unknown as { runWebGPUProgram: (...args: unknown[]) => unknown; device: GPUDevice };
    const runProgram = backend.runWebGPUProgram;
    const createBindGroup = backend.device.createBindGroup;
    let programs = 0, bindGroups = 0;
    backend.runWebGPUProgram = function (this: unknown, ...args: unknown[]) { programs++; return runProgram.apply(this, args); };
    backend.device.createBindGroup = function (this: GPUDevice, d: GPUBindGroupDescriptor) { bindGroups++; return createBindGroup.call(this, d); };
    try {
      const grads = new Map([...params].map(([name, p], i) => [name, tf.tensor(hostRandom(p.shape, 50 + i), p.shape)] as const));
      for (const g of grads.values()) await g.data(); // uploaded outside the counted steps
      opt.step(grads, 1e-3); // first step: pipelines compiled, m and v uploaded from their host zeros
      const before = tf.memory().numTensors;
      const beforeBuffers = tf.memory().numDataBuffers;
      programs = 0; bindGroups = 0;
      for (let s = 0; s < 3; s++) opt.step(grads, 1e-3);
      t.diagnostic(`3 steps over ${params.size} parameters: ${bindGroups} raw dispatches, ${programs} tfjs programs`);
      assert.equal(programs, 0);
      assert.equal(bindGroups, 3 * params.size);
      assert.equal(tf.memory().numTensors, before, 'no tensors leak per step');
      assert.equal(tf.memory().numDataBuffers, beforeBuffers, 'no data buffers leak per step');
      tf.dispose([...grads.values()]);
    } finally {
      backend.runWebGPUProgram = runProgram;
      backend.device.createBindGroup = createBindGroup;
      opt.dispose();
      tf.dispose([...params.values()]);
      setFusedOpsEnabled(false);
    }
    await assertNoDeviceError('fused adamw dispatch test');
  });

  it('gives p new data each step and leaves tensors that shared its old data untouched', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    setFusedOpsEnabled(true);
    const init = tf.tensor(hostRandom([4, 6], 7), [4, 6]);
    const initValues = (await init.data()).slice();
    const p = tf.variable(init, true, `fused-adamw-${serial++}`); // shares init's data
    const opt = new AdamW(new Map([['w', p]]), OPTIONS);
    const g = tf.ones([4, 6]);
    try {
      const before = p.dataId;
      opt.step(new Map([['w', g]]), 1e-2);
      // kernels/abs-max.ts keys its max|W| cache by a variable's dataId: an in-place p would be served a stale max.
      assert.notEqual(p.dataId, before);
      assert.deepEqual(await init.data(), initValues);
      assert.notDeepEqual(await p.data(), initValues);
    } finally {
      opt.dispose();
      tf.dispose([p, init, g]);
      setFusedOpsEnabled(false);
    }
  });

  it('resumes from state()/loadState() exactly, with moments read back between steps', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    setFusedOpsEnabled(true);
    const shape = [5, 7];
    const make = (seed: number) => tf.variable(tf.tensor(hostRandom(shape, seed), shape), true, `fused-adamw-${serial++}`);
    const grad = (s: number) => tf.tensor(hostRandom(shape, 300 + s), shape);
    const p = make(1);
    const opt = new AdamW(new Map([['w', p]]), OPTIONS);
    const q = make(2);
    const resumed = new AdamW(new Map([['w', q]]), OPTIONS);
    try {
      for (let s = 0; s < 3; s++) { const g = grad(s); opt.step(new Map([['w', g]]), 1e-2); g.dispose(); }
      const state = await opt.state(); // caches m and v on the host: the next in-place step must drop that cache
      resumed.loadState(state.stepCount, state.tensors);
      q.assign(p);
      for (let s = 3; s < 5; s++) {
        const g = grad(s);
        opt.step(new Map([['w', g]]), 1e-2);
        resumed.step(new Map([['w', g]]), 1e-2);
        g.dispose();
      }
      const [a, b] = [await opt.state(), await resumed.state()];
      assert.equal(a.stepCount, 5);
      assert.equal(b.stepCount, 5);
      assert.notDeepEqual(a.tensors.get('m/w')!.data, state.tensors.get('m/w')!.data, 'moments read after a step are fresh');
      for (const key of ['m/w', 'v/w']) assert.deepEqual(b.tensors.get(key)!.data, a.tensors.get(key)!.data, key);
      assert.deepEqual(await q.data(), await p.data());
    } finally {
      opt.dispose();
      resumed.dispose();
      tf.dispose([p, q]);
      setFusedOpsEnabled(false);
    }
    await assertNoDeviceError('fused adamw resume test');
  });
});
