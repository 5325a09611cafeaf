// The tensor-core kernel's data flow (staging in storage layout, column-major loads of transposed operands, register prefetch,
// subgroup layouts, bounds-check-free aligned variants, ragged edges) checked on any WebGPU adapter with shader-f16:
// the subgroup-matrix builtins are replaced by plain WGSL with the same fragment layout (`emulate`), so lavapipe, which
// has no subgroup matrices, runs every variant. The real builtins are checked by webgpu.test.ts where they exist.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { assertNoDeviceError } from '../../src/backend/webgpu.js';
import {
  TENSOR_CORE_REL_ERROR_BOUND, float32MatMulTensors, relativeError, setTensorCoreOptions, tensorCoreMatMulTensors,
  type TensorCoreOptions,
} from '../../src/backend/kernels/register.js';
import { absMaxInfo, operandAbsMax } from '../../src/backend/kernels/abs-max.js';
import { webGpuSession } from './webgpu-session.js';

const session = webGpuSession('mixed', {
  setup: () => setTensorCoreOptions({ emulate: true }),
  teardown: () => setTensorCoreOptions({ emulate: false }),
});

// (A K step of 64 needs more workgroup memory than lavapipe's 32 KiB; it differs only in a loop bound.)

const knobSets: Array<Partial<TensorCoreOptions>> = [
  { subgroupLayout: '4x2', prefetch: true, tileK: 32 },
  { subgroupLayout: '2x4', prefetch: false, tileK: 32 },
];
// Aligned (multiples of 128 / the K step: no bounds checks) and ragged shapes, every transpose combination.
const shapes: Array<[number[], number[], boolean, boolean]> = [
  [[128, 128], [128, 256], false, false],
  [[256, 128], [256, 128], true, false],
  [[128, 192], [256, 192], false, true],
  [[192, 256], [128, 192], true, true],
  [[130, 70], [70, 33], false, false],
  [[70, 130], [33, 70], true, true],
  [[2, 64, 45], [2, 45, 20], false, false],
];

describe('tensor-core kernel variants (emulated subgroup matrices)', () => {
  for (const knobs of knobSets) {
    const label = `${knobs.subgroupLayout}, K step ${knobs.tileK}${knobs.prefetch ? ', prefetch' : ''}`;
    it(`matches float32: ${label}`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      if (!session.info.features.includes('shader-f16')) return t.skip(`the adapter lacks shader-f16 (${session.info.adapter})`);
      assert.ok(session.info.mixed?.tensorCores, `the emulated kernel was not registered: ${session.info.mixed?.reason}`);
      setTensorCoreOptions(knobs);
      let seed = 11;
      for (const [sa, sb, ta, tb] of shapes) {
        const a = tf.randomUniform(sa, -1, 1, 'float32', seed++);
        const b = tf.randomUniform(sb, -1, 1, 'float32', seed++);
        const got = tensorCoreMatMulTensors(a, b, ta, tb);
        assert.ok(got, `shape ${sa}·${sb} covered`);
        const want = float32MatMulTensors(a, b, ta, tb);
        assert.deepEqual(got.shape, want.shape);
        const err = relativeError((await got.data()) as Float32Array, (await want.data()) as Float32Array);
        assert.ok(err <= TENSOR_CORE_REL_ERROR_BOUND, `${sa.join('x')}${ta ? 'ᵀ' : ''}·${sb.join('x')}${tb ? 'ᵀ' : ''}: relative error ${err}`);
        tf.dispose([a, b, got, want]);
      }
      await assertNoDeviceError('emulated tensor-core test');
    });
  }
});

describe('max |x| for operand scaling', () => {
  it('reduces tensors of any size in two passes', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const backend = tf.backend() as unknown as Parameters<typeof absMaxInfo>[1];
    for (const n of [1, 7, 1000, 4096 + 3, 300_001, 5_000_000]) {
      const values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = Math.sin(i * 12.9898) * 0.5;
      const at = (n * 7) >> 3;
      values[at] = -0.75 - n * 1e-9; // the largest magnitude is negative and far from the ends
      const x = tf.tensor1d(values);
      const m = absMaxInfo(x, backend);
      const got = (await tf.engine().makeTensorFromTensorInfo(m).data())[0];
      assert.equal(got, Math.fround(0.75 + n * 1e-9), `n = ${n}`);
      tf.dispose([x]);
      backend.disposeData(m.dataId);
    }
  });

  it('caches values by operand data while tfjs holds that data', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const backend = tf.backend() as unknown as Parameters<typeof operandAbsMax>[1] & { tensorMap: { numDataIds(): number } };
    // backend.read, not an engine tensor: a tensor would take a reference to the cache's data.
    const read = async (i: tf.TensorInfo): Promise<number> => ((await (tf.backend() as tf.KernelBackend).read(i.dataId)) as Float32Array)[0]!;
    const v = tf.variable(tf.tensor1d([1, -2, 3]));
    const first = operandAbsMax(v, backend);
    assert.equal(await read(first), 3);
    assert.equal(operandAbsMax(v, backend), first, 'second call hits the cache');
    v.assign(tf.tensor1d([-5, 1, 1]));
    const second = operandAbsMax(v, backend);
    assert.notEqual(second, first, 'an assigned variable has new data');
    assert.equal(await read(second), 5);
    // Entries of released data are swept: the cache stays bounded by live tensors.
    const before = backend.tensorMap.numDataIds();
    for (let i = 0; i < 200; i++) {
      const x = tf.tensor1d([i, -i - 1]);
      assert.equal(await read(operandAbsMax(x, backend)), i + 1);
      x.dispose();
    }
    assert.ok(backend.tensorMap.numDataIds() - before < 100, `cache grows: ${backend.tensorMap.numDataIds() - before}`);
    v.dispose();
  });
});
