// WebGPU device setup, device-error capture and the mixed-precision matmul. Runs on whatever adapter Dawn finds
// (Mesa lavapipe on the CI machine, the H200 on the GPU machine); skips with a message where there is none.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerGradients } from '../../src/model/gradients.js';
import { LopperError } from '../../src/errors/lopper-error.js';
import {
  assertNoDeviceError, clearDeviceErrors, deviceErrors, initWebGpu, webGpuDevice, withDeviceErrorScope,
} from '../../src/backend/webgpu.js';
import {
  TENSOR_CORE_REL_ERROR_BOUND, float32MatMulTensors, relativeError, tensorCoreMatMulTensors, tensorCoreStats,
} from '../../src/backend/kernels/register.js';
import { tensorCoreMatMulSource } from '../../src/backend/kernels/matmul-tensor-core.js';
import { webGpuSession } from './webgpu-session.js';

registerGradients();

const session = webGpuSession('mixed');

async function onCpu(f: () => tf.Tensor): Promise<Float32Array> {
  const prev = tf.getBackend();
  await tf.setBackend('cpu');
  const t = f();
  const d = (await t.data()) as Float32Array;
  t.dispose();
  await tf.setBackend(prev);
  return d;
}

describe('initWebGpu', () => {
  it('creates a Dawn device, registers it as the tfjs webgpu backend and reports features and limits', (t) => {
    if (!session.info) return t.skip(session.skipReason);
    assert.equal(tf.getBackend(), 'webgpu');
    assert.ok(session.info.adapter.length > 0);
    assert.ok(session.info.features.includes('shader-f16'), `features: ${session.info.features.join(', ')}`);
    assert.ok(session.info.limits.maxStorageBufferBindingSize >= 128 * 1024 * 1024);
    assert.ok(session.info.dawnToggles.includes('vulkan_enable_f16_on_nvidia'));
    assert.ok(session.info.mixed !== null, 'precision mixed reports what it does');
    if (!session.info.features.includes('chromium-experimental-subgroup-matrix')) {
      assert.equal(session.info.mixed!.tensorCores, false);
      assert.match(session.info.notes.join('\n'), /matmuls stay on tfjs's float32 kernels/);
    }
  });

  it('runs tfjs ops on the device with the float32 results of the cpu backend', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const a = Array.from({ length: 48 * 40 }, (_, i) => Math.sin(i * 0.37));
    const b = Array.from({ length: 40 * 24 }, (_, i) => Math.cos(i * 0.11));
    const f = () => tf.tidy(() => tf.softmax(tf.matMul(tf.tensor2d(a, [48, 40]), tf.tensor2d(b, [40, 24])), -1));
    const got = f();
    const gpu = (await got.data()) as Float32Array;
    got.dispose();
    const cpu = await onCpu(f);
    assert.ok(relativeError(gpu, cpu) < 1e-5, `relative error ${relativeError(gpu, cpu)}`);
    await assertNoDeviceError('ops');
  });

  it('returns the same device on a second call', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const again = await initWebGpu({ precision: 'mixed' });
    assert.equal(again, session.info);
  });
});

describe('device errors', () => {
  it('assertNoDeviceError fails the stage with LP8003, the stage name and the memory in use', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    clearDeviceErrors();
    // MAP_READ may only be combined with COPY_DST: a validation error nothing captures.
    webGpuDevice().createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.MAP_WRITE });
    await assert.rejects(assertNoDeviceError('scores'), (e: unknown) => {
      assert.ok(e instanceof LopperError);
      assert.equal(e.code, 'LP8003');
      assert.match(e.message, /stage scores: GPU validation error/);
      assert.match(e.message, /in use on the GPU/);
      return true;
    });
    assert.equal(deviceErrors().length, 1);
    // Sticky: later stages refuse to report too, and no value computed afterwards reaches the host.
    await assert.rejects(assertNoDeviceError('report'), /stage report/);
    const later = tf.add(tf.ones([4]), 1);
    await assert.rejects(later.data(), (e: unknown) => e instanceof LopperError && e.code === 'LP8003');
    later.dispose();
    clearDeviceErrors();
    await assertNoDeviceError('clean');
  });

  it('withDeviceErrorScope attributes errors inside the scope to the stage and rethrows nothing else', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    clearDeviceErrors();
    const v = await withDeviceErrorScope('ok', async () => {
      const x = tf.add(tf.ones([4]), 1);
      const d = await x.data();
      x.dispose();
      return d[0];
    });
    assert.equal(v, 2);
    await assert.rejects(withDeviceErrorScope('evaluate', () => {
      webGpuDevice().createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.MAP_WRITE });
    }), (e: unknown) => e instanceof LopperError && e.code === 'LP8003' && /stage evaluate/.test(e.message));
    clearDeviceErrors();
  });
});

describe('tensor-core matmul (precision mixed)', () => {
  it('generates WGSL with the subgroup-matrix directives first', () => {
    const src = tensorCoreMatMulSource({ transposeA: true, transposeB: false, vecA: true, vecB: false, scaleA: true, scaleB: true, syntax: 'templated', subgroupId: 'builtin' });
    assert.ok(src.startsWith('enable f16;\nenable subgroups;\nenable chromium_experimental_subgroup_matrix;'));
    // Aᵀ is staged in its storage layout and read back column-major; B row-major.
    assert.match(src, /subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, col_major>/);
    assert.match(src, /subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>/);
    assert.match(src, /subgroupMatrixMultiplyAccumulate/);
  });

  // Relative error bound per kernel: max |Δ| / max |reference| ≤ TENSOR_CORE_REL_ERROR_BOUND (5e-3) for f16
  // operands with f32 accumulation on U(−1, 1) inputs; the float32 path (tfjs) is the reference.
  const shapes: Array<[number[], number[], boolean, boolean]> = [
    [[512, 384], [384, 256], false, false],
    [[300, 200], [200, 100], false, false],
    [[200, 300], [200, 100], true, false],
    [[300, 200], [100, 200], false, true],
    [[200, 300], [100, 200], true, true],
    [[4, 130, 45], [45, 77], false, false],
    [[2, 3, 64, 33], [2, 3, 33, 64], false, false],
  ];
  for (const [sa, sb, ta, tb] of shapes) {
    it(`matches float32 on ${sa.join('x')}${ta ? 'ᵀ' : ''} · ${sb.join('x')}${tb ? 'ᵀ' : ''}`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      if (!session.info.mixed?.tensorCores) return t.skip(`tensor cores not used on this device: ${session.info.mixed?.reason}`);
      const a = tf.randomUniform(sa, -1, 1, 'float32', 1);
      const b = tf.randomUniform(sb, -1, 1, 'float32', 2);
      const got = tensorCoreMatMulTensors(a, b, ta, tb)!;
      const want = float32MatMulTensors(a, b, ta, tb);
      assert.deepEqual(got.shape, want.shape);
      const err = relativeError((await got.data()) as Float32Array, (await want.data()) as Float32Array);
      assert.ok(err <= TENSOR_CORE_REL_ERROR_BOUND, `relative error ${err}`);
      tf.dispose([a, b, got, want]);
      await assertNoDeviceError('tensor-core test');
    });
  }

  it('keeps small gradients: scaled operands survive values far below f16 range', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    if (!session.info.mixed?.tensorCores) return t.skip(`tensor cores not used on this device: ${session.info.mixed?.reason}`);
    const a = tf.mul(tf.randomUniform([256, 256], -1, 1, 'float32', 3), 1e-7);
    const b = tf.randomUniform([256, 256], -1, 1, 'float32', 4);
    const got = tensorCoreMatMulTensors(a, b)!;
    const want = float32MatMulTensors(a, b);
    const err = relativeError((await got.data()) as Float32Array, (await want.data()) as Float32Array);
    assert.ok(err <= TENSOR_CORE_REL_ERROR_BOUND, `relative error ${err}`);
    tf.dispose([a, b, got, want]);
  });

  it('routes tf.matMul and its gradient through the kernel', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    if (!session.info.mixed?.tensorCores) return t.skip(`tensor cores not used on this device: ${session.info.mixed?.reason}`);
    const before = tensorCoreStats().tensorCore;
    const x = tf.randomUniform([256, 512], -1, 1, 'float32', 5);
    const w = tf.randomUniform([512, 256], -1, 1, 'float32', 6);
    const g = tf.grad((wv: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, wv))))(w);
    await g.data();
    assert.ok(tensorCoreStats().tensorCore >= before + 2, 'forward and backward matmuls used tensor cores');
    tf.dispose([x, w, g]);
  });
});
