// precision: mixed — replaces tfjs's BatchMatMul on 'webgpu' with the tensor-core kernel where the device has f16
// subgroup matrices, after checking the kernel against tfjs's float32 kernel on random inputs. Anything the kernel
// does not cover (small products, non-float32, general batch broadcasting) goes to tfjs's own kernel. tfjs's
// BatchMatMul gradient is written with matMul, so the backward pass uses the same kernel.
import * as tf from '@tensorflow/tfjs-core';
import {
  dispatchTensorCoreMatMul,
  tensorCoreMatMulSource,
  variantKey,
  type LoadSyntax,
  type SubgroupIdSource,
  type TensorCoreVariant,
  type WebGpuBackendInternals,
} from './matmul-tensor-core.js';

export interface SelfTestCase {
  shape: string;
  maxRelError: number;
}

export interface MixedPrecisionStatus {
  tensorCores: boolean;
  /** Why tensor cores are not used (when tensorCores is false) or which variant is used. */
  reason: string;
  syntax: LoadSyntax | null;
  subgroupId: SubgroupIdSource | null;
  scaled: boolean;
  selfTest: SelfTestCase[];
}

export interface TensorCoreOptions {
  /** Scale operands by a power of two before rounding to f16 (protects gradients from f16 underflow). */
  scaled: boolean;
  /** Products with fewer multiply-adds (M·N·K) than this use tfjs's kernel. */
  minMacs: number;
  /** Use the plain-WGSL emulation of the kernel (tests on devices without subgroup matrices; slow). */
  emulate: boolean;
  /** K step of the workgroup tile. */
  tileK: 32 | 64;
}

/** Relative error bound (max |Δ| / max |reference|) the self-test and tests/backend accept for f16 operands. */
export const TENSOR_CORE_REL_ERROR_BOUND = 5e-3;

const options: TensorCoreOptions = {
  // LOPPER_TENSOR_CORE_SCALED=0 turns operand scaling off (benchmarks of its cost).
  scaled: process.env.LOPPER_TENSOR_CORE_SCALED !== '0',
  minMacs: 1 << 18,
  emulate: false,
  // LOPPER_TENSOR_CORE_TILE_K=64 selects the deeper K step (benchmarks).
  tileK: process.env.LOPPER_TENSOR_CORE_TILE_K === '64' ? 64 : 32,
};
const stats = { tensorCore: 0, fallback: 0 };
let active: {
  device: GPUDevice;
  syntax: LoadSyntax;
  subgroupId: SubgroupIdSource;
  original: tf.KernelFunc;
  pipelines: Map<string, GPUComputePipeline>;
} | null = null;

export function setTensorCoreOptions(o: Partial<TensorCoreOptions>): void {
  Object.assign(options, o);
}

export function tensorCoreStats(): { tensorCore: number; fallback: number } {
  return { ...stats };
}

interface DeviceInfoLike {
  features: string[];
  subgroupMatrixConfigs: Array<{ componentType: string; resultComponentType: string; M: number; N: number; K: number }>;
  subgroupMinSize: number | null;
  subgroupMaxSize: number | null;
}

function unsupportedReason(info: DeviceInfoLike): string | null {
  for (const f of ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix']) {
    if (!info.features.includes(f)) return `the device lacks ${f}`;
  }
  const cfg = info.subgroupMatrixConfigs.find((c) =>
    c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16);
  if (!cfg) return 'no f16×f16→f32 16×16×16 subgroup-matrix configuration';
  if (info.subgroupMinSize !== 32 || info.subgroupMaxSize !== 32) {
    return `the kernel assumes subgroups of 32 (device: ${info.subgroupMinSize}–${info.subgroupMaxSize})`;
  }
  return null;
}

export async function registerMixedPrecisionKernels(device: GPUDevice, info: DeviceInfoLike): Promise<MixedPrecisionStatus> {
  const status: MixedPrecisionStatus = {
    tensorCores: false, reason: '', syntax: null, subgroupId: null, scaled: options.scaled, selfTest: [],
  };
  const why = options.emulate
    ? (info.features.includes('shader-f16') ? null : 'the device lacks shader-f16 (needed even by the emulation)')
    : unsupportedReason(info);
  if (why) {
    status.reason = why;
    return status;
  }
  // Which spelling of subgroupMatrixLoad/Store and of the subgroup index this Dawn accepts: compile one variant each way.
  const errors: string[] = [];
  let chosen: { syntax: LoadSyntax; subgroupId: SubgroupIdSource; pipeline: GPUComputePipeline } | null = null;
  for (const syntax of ['templated', 'deprecated'] as const) {
    for (const subgroupId of ['builtin', 'derived'] as const) {
      const v: TensorCoreVariant = { transposeA: false, transposeB: false, vecA: true, vecB: true, scaled: true, syntax, subgroupId, emulate: options.emulate };
      try {
        const pipeline = await compileAsync(device, v);
        chosen = { syntax, subgroupId, pipeline };
        break;
      } catch (e) {
        errors.push(`${syntax}/${subgroupId}: ${firstLine((e as Error).message)}`);
      }
    }
    if (chosen) break;
  }
  if (!chosen) {
    status.reason = `the tensor-core kernel did not compile: ${errors.join('; ')}`;
    return status;
  }
  const original = tf.getKernel('BatchMatMul', 'webgpu')?.kernelFunc;
  if (!original) {
    status.reason = 'tfjs has no webgpu BatchMatMul kernel to wrap';
    return status;
  }
  active = { device, syntax: chosen.syntax, subgroupId: chosen.subgroupId, original, pipelines: new Map() };
  active.pipelines.set(variantKey({ transposeA: false, transposeB: false, vecA: true, vecB: true, scaled: true, syntax: chosen.syntax, subgroupId: chosen.subgroupId, emulate: options.emulate }), chosen.pipeline);
  status.syntax = chosen.syntax;
  status.subgroupId = chosen.subgroupId;

  try {
    status.selfTest = await selfTest();
  } catch (e) {
    active = null;
    status.reason = `the tensor-core kernel failed its self-test: ${(e as Error).message}`;
    return status;
  }
  const worst = Math.max(...status.selfTest.map((c) => c.maxRelError));
  if (!(worst <= TENSOR_CORE_REL_ERROR_BOUND)) {
    active = null;
    status.reason = `the tensor-core kernel disagrees with float32 (max relative error ${worst.toExponential(2)} > ${TENSOR_CORE_REL_ERROR_BOUND})`;
    return status;
  }
  tf.unregisterKernel('BatchMatMul', 'webgpu');
  tf.registerKernel({ kernelName: 'BatchMatMul', backendName: 'webgpu', kernelFunc: mixedBatchMatMul as unknown as tf.KernelFunc });
  status.tensorCores = true;
  status.reason = `${options.emulate ? 'EMULATED (no tensor cores) ' : ''}tensor cores via subgroup matrices (f16 operands${options.scaled ? ', power-of-two scaled' : ''}, f32 accumulate; ${chosen.syntax} load/store, ${chosen.subgroupId} subgroup id)`;
  return status;
}

/** Restores tfjs's own BatchMatMul (tests). */
export function unregisterMixedPrecisionKernels(): void {
  if (!active) return;
  const original = active.original;
  if (tf.getKernel('BatchMatMul', 'webgpu')?.kernelFunc !== original) {
    tf.unregisterKernel('BatchMatMul', 'webgpu');
    tf.registerKernel({ kernelName: 'BatchMatMul', backendName: 'webgpu', kernelFunc: original });
  }
  active = null;
}

function firstLine(s: string): string {
  return s.split('\n').find((l) => l.trim().length > 0)?.trim().slice(0, 300) ?? s;
}

async function compileAsync(device: GPUDevice, v: TensorCoreVariant): Promise<GPUComputePipeline> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: tensorCoreMatMulSource(v), label: `TensorCoreMatMulKernel_${variantKey(v)}` });
  let pipeline: GPUComputePipeline | null = null;
  let failure: Error | null = null;
  try {
    pipeline = await device.createComputePipelineAsync({
      layout: 'auto',
      compute: { module, entryPoint: 'main' },
      label: `TensorCoreMatMulKernel_${variantKey(v)}`,
    });
  } catch (e) {
    failure = e as Error;
  }
  const scoped = await device.popErrorScope();
  if (scoped) {
    const info = await module.getCompilationInfo();
    const msgs = info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
    throw new Error(msgs.length ? msgs.join(' | ') : scoped.message);
  }
  if (failure || !pipeline) throw failure ?? new Error('pipeline creation failed');
  return pipeline;
}

function pipelineFor(v: TensorCoreVariant): GPUComputePipeline {
  v.emulate = options.emulate;
  v.tileK = options.tileK;
  const key = variantKey(v);
  let p = active!.pipelines.get(key);
  if (!p) {
    const module = active!.device.createShaderModule({ code: tensorCoreMatMulSource(v), label: `TensorCoreMatMulKernel_${key}` });
    p = active!.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: `TensorCoreMatMulKernel_${key}` });
    active!.pipelines.set(key, p);
  }
  return p;
}

interface KernelArgs {
  inputs: { a: tf.TensorInfo; b: tf.TensorInfo };
  backend: WebGpuBackendInternals;
  attrs: { transposeA: boolean; transposeB: boolean };
}

function mixedBatchMatMul(args: KernelArgs): tf.TensorInfo {
  const out = tensorCoreMatMul(args.inputs.a, args.inputs.b, args.attrs.transposeA, args.attrs.transposeB, args.backend, false);
  if (out) {
    stats.tensorCore++;
    return out;
  }
  stats.fallback++;
  return active!.original(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
}

const prod = (s: number[]): number => s.reduce((x, y) => x * y, 1);

/** The tensor-core product, or null when this kernel does not cover the case (the caller uses tfjs's kernel). */
function tensorCoreMatMul(
  a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean, backend: WebGpuBackendInternals, force: boolean,
): tf.TensorInfo | null {
  if (!active || a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const batchShapeA = a.shape.slice(0, -2);
  const batchShapeB = b.shape.slice(0, -2);
  const batchA = prod(batchShapeA);
  const batchB = prod(batchShapeB);
  let batchShape: number[];
  if (batchA === batchB && batchShapeA.join() === batchShapeB.join()) batchShape = batchShapeA;
  else if (batchB === 1 && batchShapeB.length <= batchShapeA.length) batchShape = batchShapeA;
  else if (batchA === 1 && batchShapeA.length <= batchShapeB.length) batchShape = batchShapeB;
  else return null;
  const batch = Math.max(batchA, batchB);
  if (M === 0 || N === 0 || K === 0 || batch > 65535) return null;
  if (!force && (M < 16 || N < 16 || K < 16 || M * N * K * batch < options.minMacs)) return null;
  const contigA = transposeA ? M : K;
  const contigB = transposeB ? K : N;
  const v: TensorCoreVariant = {
    transposeA, transposeB, vecA: contigA % 4 === 0, vecB: contigB % 4 === 0, scaled: options.scaled,
    syntax: active.syntax, subgroupId: active.subgroupId,
  };
  const pipeline = pipelineFor(v);
  let maxAbs: [tf.TensorInfo, tf.TensorInfo] | null = null;
  const temps: tf.TensorInfo[] = [];
  if (options.scaled) {
    maxAbs = [absMax(a, backend, temps), absMax(b, backend, temps)];
  }
  const out = dispatchTensorCoreMatMul(backend, pipeline, a, b, {
    batch, M, N, K, strideA: batchA === 1 ? 0 : M * K, strideB: batchB === 1 ? 0 : K * N,
  }, [...batchShape, M, N], maxAbs);
  for (const t of temps) backend.disposeData(t.dataId);
  return out;
}

/**
 * max |x| as a 1-element tensor on the device. tfjs reduces a whole tensor to one value in a single workgroup, which
 * is slow for millions of elements, so large tensors are reduced in two passes: rows of the last dimension, then those.
 */
function absMax(x: tf.TensorInfo, backend: WebGpuBackendInternals, temps: tf.TensorInfo[]): tf.TensorInfo {
  const kb = backend as unknown as tf.KernelBackend;
  const absK = tf.getKernel('Abs', 'webgpu')!.kernelFunc;
  const maxK = tf.getKernel('Max', 'webgpu')!.kernelFunc;
  const reshapeK = tf.getKernel('Reshape', 'webgpu')!.kernelFunc;
  const n = prod(x.shape);
  const cols = x.shape[x.shape.length - 1] ?? 1;
  const rows = n / cols;
  const abs = absK({ inputs: { x }, backend: kb, attrs: {} }) as tf.TensorInfo;
  temps.push(abs);
  if (rows >= 16 && cols >= 16) {
    const m2 = reshapeK({ inputs: { x: abs }, backend: kb, attrs: { shape: [rows, cols] } }) as tf.TensorInfo;
    temps.push(m2);
    const perRow = maxK({ inputs: { x: m2 }, backend: kb, attrs: { reductionIndices: [1], keepDims: false } }) as tf.TensorInfo;
    temps.push(perRow);
    const m = maxK({ inputs: { x: perRow }, backend: kb, attrs: { reductionIndices: [0], keepDims: false } }) as tf.TensorInfo;
    temps.push(m);
    return m;
  }
  const m = maxK({ inputs: { x: abs }, backend: kb, attrs: { reductionIndices: x.shape.map((_, i) => i), keepDims: false } }) as tf.TensorInfo;
  temps.push(m);
  return m;
}

/**
 * The tensor-core product of two tensors, bypassing size thresholds (for tests and benchmarks); null when the
 * tensor-core path is not active on this device or the shapes are not covered.
 */
export function tensorCoreMatMulTensors(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor | null {
  if (!active || tf.getBackend() !== 'webgpu') return null;
  const backend = tf.backend() as unknown as WebGpuBackendInternals;
  const info = tensorCoreMatMul(a, b, transposeA, transposeB, backend, true);
  if (!info) return null;
  return tf.engine().makeTensorFromTensorInfo(info);
}

/** tfjs's own float32 BatchMatMul (the exact path), also while the tensor-core kernel is registered. */
export function float32MatMulTensors(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  if (!active) return tf.matMul(a, b, transposeA, transposeB);
  const info = active.original({
    inputs: { a, b }, backend: tf.backend(), attrs: { transposeA, transposeB },
  } as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(info);
}

/** Checks the kernel against tfjs's float32 matmul: transposes, ragged edges, unaligned rows, broadcast batches. */
async function selfTest(): Promise<SelfTestCase[]> {
  const cases: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean }> = [
    { a: [256, 256], b: [256, 256], ta: false, tb: false },
    { a: [200, 136], b: [136, 72], ta: false, tb: false },
    { a: [136, 200], b: [136, 72], ta: true, tb: false },
    { a: [200, 136], b: [72, 136], ta: false, tb: true },
    { a: [136, 200], b: [72, 136], ta: true, tb: true },
    { a: [3, 130, 45], b: [45, 97], ta: false, tb: false },
    { a: [2, 64, 48], b: [2, 48, 40], ta: false, tb: false },
  ];
  const results: SelfTestCase[] = [];
  let seed = 7;
  for (const c of cases) {
    const [a, b] = [tf.randomUniform(c.a, -1, 1, 'float32', seed++), tf.randomUniform(c.b, -1, 1, 'float32', seed++)];
    const got = tensorCoreMatMulTensors(a, b, c.ta, c.tb);
    if (!got) throw new Error(`shape ${c.a}×${c.b} not covered`);
    const want = float32MatMulTensors(a, b, c.ta, c.tb);
    const err = relativeError(await got.data() as Float32Array, await want.data() as Float32Array);
    results.push({ shape: `${c.a.join('x')}${c.ta ? 'ᵀ' : ''}·${c.b.join('x')}${c.tb ? 'ᵀ' : ''}`, maxRelError: err });
    tf.dispose([a, b, got, want]);
  }
  return results;
}

/** max |got − want| / max |want| (NaN-safe: any NaN gives Infinity). */
export function relativeError(got: Float32Array, want: Float32Array): number {
  if (got.length !== want.length) return Infinity;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d === d)) return Infinity;
    if (d > maxDiff) maxDiff = d;
    const r = Math.abs(want[i]);
    if (r > maxRef) maxRef = r;
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}
