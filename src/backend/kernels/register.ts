// precision: mixed — replaces tfjs's BatchMatMul on 'webgpu' with the tensor-core kernel where the device has f16
// subgroup matrices, after checking the kernel against tfjs's float32 kernel on random inputs. Anything the kernel
// does not cover (small products, non-float32, general batch broadcasting) goes to tfjs's own kernel. tfjs's
// BatchMatMul gradient is written with matMul, so the backward pass uses the same kernel.
import * as tf from '@tensorflow/tfjs-core';
import {
  DEFAULT_KNOBS,
  TILE_K,
  TILE_M,
  TILE_N,
  dispatchTensorCoreMatMul,
  tensorCoreMatMulSource,
  variantKey,
  type LoadSyntax,
  type SubgroupLayout,
  type SubgroupIdSource,
  type TensorCoreVariant,
  type WebGpuBackendInternals,
} from './matmul-tensor-core.js';
import { clearAbsMaxCache, operandAbsMax } from './abs-max.js';

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
  scaling: OperandScaling;
  selfTest: SelfTestCase[];
}

/**
 * Which matmul operands are scaled by a power of two before rounding to f16 (protects small values from f16
 * underflow): `gradients` — the incoming gradient of a backward matmul (the BatchMatMul gradient marks it with
 * GRADIENT_OPERAND_ATTR); `all` — both operands of every product; `none`.
 */
export type OperandScaling = 'gradients' | 'all' | 'none';

/** BatchMatMul attribute naming the operand ('a' | 'b') that is an incoming gradient (set by model/gradients.ts). */
export const GRADIENT_OPERAND_ATTR = 'lopperGradientOperand';

export interface TensorCoreOptions {
  scaling: OperandScaling;
  /** Products with fewer multiply-adds (M·N·K) than this use tfjs's kernel. */
  minMacs: number;
  /** Use the plain-WGSL emulation of the kernel (tests on devices without subgroup matrices; slow). */
  emulate: boolean;
  /** K step of the workgroup tile. */
  tileK: 32 | 64;
  subgroupLayout: SubgroupLayout;
  prefetch: boolean;
  /** Compile bounds-check-free kernels for shapes that are multiples of the tile. */
  alignedKernels: boolean;
}

/** Relative error bound (max |Δ| / max |reference|) the self-test and tests/backend accept for f16 operands. */
export const TENSOR_CORE_REL_ERROR_BOUND = 5e-3;

const options: TensorCoreOptions = {
  // LOPPER_TENSOR_CORE_SCALING=all|none overrides which operands are scaled (benchmarks of its cost).
  scaling: process.env.LOPPER_TENSOR_CORE_SCALING === 'all' ? 'all' : process.env.LOPPER_TENSOR_CORE_SCALING === 'none' ? 'none' : 'gradients',
  minMacs: 1 << 18,
  emulate: false,
  ...knobsFromEnv(),
};

/**
 * Kernel knobs, overridable for benchmarks: LOPPER_TENSOR_CORE_TILE_K=32, LOPPER_TENSOR_CORE_LAYOUT=2x4,
 * LOPPER_TENSOR_CORE_PREFETCH=0, LOPPER_TENSOR_CORE_ALIGNED=0.
 */
export function knobsFromEnv(env: NodeJS.ProcessEnv = process.env): Pick<TensorCoreOptions, 'tileK' | 'subgroupLayout' | 'prefetch' | 'alignedKernels'> {
  return {
    tileK: env.LOPPER_TENSOR_CORE_TILE_K === '32' ? 32 : env.LOPPER_TENSOR_CORE_TILE_K === '64' ? 64 : DEFAULT_KNOBS.tileK,
    subgroupLayout: env.LOPPER_TENSOR_CORE_LAYOUT === '2x4' ? '2x4'
      : env.LOPPER_TENSOR_CORE_LAYOUT === '4x2' ? '4x2' : DEFAULT_KNOBS.subgroupLayout,
    prefetch: env.LOPPER_TENSOR_CORE_PREFETCH === undefined ? DEFAULT_KNOBS.prefetch : env.LOPPER_TENSOR_CORE_PREFETCH !== '0',
    alignedKernels: env.LOPPER_TENSOR_CORE_ALIGNED !== '0',
  };
}
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
    tensorCores: false, reason: '', syntax: null, subgroupId: null, scaling: options.scaling, selfTest: [],
  };
  const why = options.emulate
    ? (info.features.includes('shader-f16') ? null : 'the device lacks shader-f16 (needed even by the emulation)')
    : unsupportedReason(info);
  if (why) {
    status.reason = why;
    return status;
  }
  // A K step of 64 stages 37 KiB (45 KiB with the edge-store tile); WebGPU guarantees only 16 KiB.
  if (options.tileK === 64 && device.limits.maxComputeWorkgroupStorageSize < 48 * 1024) options.tileK = TILE_K;
  // Which spelling of subgroupMatrixLoad/Store and of the subgroup index this Dawn accepts: compile one variant each way.
  const errors: string[] = [];
  let chosen: { syntax: LoadSyntax; subgroupId: SubgroupIdSource; pipeline: GPUComputePipeline; key: string } | null = null;
  for (const syntax of ['templated', 'deprecated'] as const) {
    for (const subgroupId of ['builtin', 'derived'] as const) {
      // The plain a·b product with both operands scaled: the widest binding set of the kernel.
      const v: TensorCoreVariant = { transposeA: false, transposeB: false, vecA: true, vecB: true, scaleA: true, scaleB: true, syntax, subgroupId };
      try {
        const pipeline = await compileAsync(device, withOptions(v));
        chosen = { syntax, subgroupId, pipeline, key: variantKey(v) };
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
  clearAbsMaxCache(); // values of a previous device's tensors
  active = { device, syntax: chosen.syntax, subgroupId: chosen.subgroupId, original, pipelines: new Map() };
  active.pipelines.set(chosen.key, chosen.pipeline);
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
  status.reason = `${options.emulate ? 'EMULATED (no tensor cores) ' : ''}tensor cores via subgroup matrices (f16 operands, ${options.scaling === 'none' ? 'unscaled' : options.scaling === 'all' ? 'all power-of-two scaled' : 'gradients power-of-two scaled'}, f32 accumulate; ${chosen.syntax} load/store, ${chosen.subgroupId} subgroup id)`;
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

/**
 * Compiles variants not yet cached all at once through createComputePipelineAsync, which Dawn may spread over
 * threads (one synchronous compile after another took 5 s of the H200 run's start-up). A variant that fails here is
 * left out, so pipelineFor compiles it when first used and reports its error then.
 */
async function precompile(variants: (TensorCoreVariant | undefined)[]): Promise<void> {
  const todo = new Map<string, TensorCoreVariant>();
  for (const v of variants) {
    if (!v) continue;
    const key = variantKey(withOptions(v));
    if (!active!.pipelines.has(key)) todo.set(key, v);
  }
  const device = active!.device;
  device.pushErrorScope('validation');
  const compiled = await Promise.allSettled([...todo].map(async ([key, v]) => {
    const module = device.createShaderModule({ code: tensorCoreMatMulSource(v), label: `TensorCoreMatMulKernel_${key}` });
    return [key, await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: `TensorCoreMatMulKernel_${key}` })] as const;
  }));
  if (await device.popErrorScope()) return;
  for (const r of compiled) if (r.status === 'fulfilled') active!.pipelines.set(r.value[0], r.value[1]);
}

/** The variant with the kernel knobs of the current options filled in (the pipeline cache key covers them). */
function withOptions(v: TensorCoreVariant): TensorCoreVariant {
  v.emulate = options.emulate;
  v.tileK = options.tileK;
  v.subgroupLayout = options.subgroupLayout;
  v.prefetch = options.prefetch;
  return v;
}

function pipelineFor(v: TensorCoreVariant): GPUComputePipeline {
  const key = variantKey(withOptions(v));
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
  attrs: { transposeA: boolean; transposeB: boolean; [GRADIENT_OPERAND_ATTR]?: 'a' | 'b' };
}

/** Which operands of one product to scale under the current option. */
function scalingFor(gradientOperand: 'a' | 'b' | undefined): { a: boolean; b: boolean } {
  if (options.scaling === 'all') return { a: true, b: true };
  if (options.scaling === 'none') return { a: false, b: false };
  return { a: gradientOperand === 'a', b: gradientOperand === 'b' };
}

function mixedBatchMatMul(args: KernelArgs): tf.TensorInfo {
  const { transposeA, transposeB } = args.attrs;
  const out = tensorCoreMatMul(args.inputs.a, args.inputs.b, transposeA, transposeB, args.backend, false,
    scalingFor(args.attrs[GRADIENT_OPERAND_ATTR]));
  if (out) {
    stats.tensorCore++;
    return out;
  }
  stats.fallback++;
  return active!.original(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
}

const prod = (s: number[]): number => s.reduce((x, y) => x * y, 1);

interface TensorCorePlan {
  v: TensorCoreVariant;
  geometry: { batch: number; M: number; N: number; K: number; strideA: number; strideB: number };
  outShape: number[];
}

/** The variant and geometry of one product on the kernel, or null when the kernel does not cover it. */
function planTensorCoreMatMul(
  a: Pick<tf.TensorInfo, 'shape' | 'dtype'>, b: Pick<tf.TensorInfo, 'shape' | 'dtype'>, transposeA: boolean, transposeB: boolean, force: boolean,
  scale: { a: boolean; b: boolean },
): TensorCorePlan | null {
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
  // Thin products (LoRA's rank-8 factors) stay here too: zero-padded tiles waste tensor-core work, but tfjs's
  // float32 kernel is far slower on a 1024×8×4096 product than one pass of this kernel.
  if (!force && M * N * K * batch < options.minMacs) return null;
  const contigA = transposeA ? M : K;
  const contigB = transposeB ? K : N;
  const aligned = options.alignedKernels && M % TILE_M === 0 && N % TILE_N === 0 && K % options.tileK === 0;
  const v: TensorCoreVariant = {
    transposeA, transposeB, vecA: contigA % 4 === 0, vecB: contigB % 4 === 0, scaleA: scale.a, scaleB: scale.b,
    syntax: active.syntax, subgroupId: active.subgroupId, aligned,
  };
  return {
    v, geometry: { batch, M, N, K, strideA: batchA === 1 ? 0 : M * K, strideB: batchB === 1 ? 0 : K * N }, outShape: [...batchShape, M, N],
  };
}

/** The tensor-core product, or null when this kernel does not cover the case (the caller uses tfjs's kernel). */
function tensorCoreMatMul(
  a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean, backend: WebGpuBackendInternals, force: boolean,
  scale: { a: boolean; b: boolean },
): tf.TensorInfo | null {
  const plan = planTensorCoreMatMul(a, b, transposeA, transposeB, force, scale);
  if (!plan) return null;
  const { v, geometry } = plan;
  const pipeline = pipelineFor(v);
  const programs = backend as unknown as Parameters<typeof operandAbsMax>[1];
  const maxAbs: [tf.TensorInfo | null, tf.TensorInfo | null] = [
    scale.a ? operandAbsMax(a, programs) : null,
    scale.b ? operandAbsMax(b, programs) : null,
  ];
  return dispatchTensorCoreMatMul(backend, pipeline, a, b, geometry, plan.outShape, maxAbs);
}

/**
 * The tensor-core product of two tensors, bypassing size thresholds (for tests and benchmarks); null when the
 * tensor-core path is not active on this device or the shapes are not covered.
 */
export function tensorCoreMatMulTensors(
  a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false, scale = { a: true, b: true },
): tf.Tensor | null {
  if (!active || tf.getBackend() !== 'webgpu') return null;
  const backend = tf.backend() as unknown as WebGpuBackendInternals;
  const info = tensorCoreMatMul(a, b, transposeA, transposeB, backend, true, scale);
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
  const cases: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean; scale?: { a: boolean; b: boolean } }> = [
    { a: [256, 256], b: [256, 256], ta: false, tb: false },
    { a: [256, 256], b: [256, 256], ta: false, tb: true, scale: { a: false, b: false } },
    { a: [200, 136], b: [136, 72], ta: false, tb: false, scale: { a: false, b: true } },
    { a: [1000, 136], b: [8, 136], ta: false, tb: true, scale: { a: true, b: false } },
    { a: [200, 136], b: [136, 72], ta: false, tb: false },
    { a: [136, 200], b: [136, 72], ta: true, tb: false },
    { a: [200, 136], b: [72, 136], ta: false, tb: true },
    { a: [136, 200], b: [72, 136], ta: true, tb: true },
    { a: [3, 130, 45], b: [45, 97], ta: false, tb: false },
    { a: [2, 64, 48], b: [2, 48, 40], ta: false, tb: false },
  ];
  await precompile(cases.map((c) => planTensorCoreMatMul(
    { shape: c.a, dtype: 'float32' }, { shape: c.b, dtype: 'float32' }, c.ta, c.tb, true, c.scale ?? { a: true, b: true })?.v));
  const results: SelfTestCase[] = [];
  let seed = 7;
  for (const c of cases) {
    const [a, b] = [tf.randomUniform(c.a, -1, 1, 'float32', seed++), tf.randomUniform(c.b, -1, 1, 'float32', seed++)];
    const got = tensorCoreMatMulTensors(a, b, c.ta, c.tb, c.scale);
    if (!got) throw new Error(`shape ${c.a}×${c.b} not covered`);
    const want = float32MatMulTensors(a, b, c.ta, c.tb);
    const err = relativeError(await got.data() as Float32Array, await want.data() as Float32Array);
    const scaled = c.scale ? `${c.scale.a ? 's' : 'u'}${c.scale.b ? 's' : 'u'}` : 'ss';
    results.push({ shape: `${c.a.join('x')}${c.ta ? 'ᵀ' : ''}·${c.b.join('x')}${c.tb ? 'ᵀ' : ''} (${scaled})`, maxRelError: err });
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
