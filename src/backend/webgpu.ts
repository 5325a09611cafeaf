// WebGPU device setup for tfjs on Dawn (npm `webgpu`, dawn.node) and capture of device errors.
//
// tfjs-backend-webgpu's own factory (base.ts) asks the adapter for `timestamp-query` and `bgra8unorm-storage` only, so
// shader-f16, subgroups and subgroup matrices (tensor cores) are never enabled. We create the device ourselves, with the
// Dawn toggles that expose them on NVIDIA (reference/webgpu.md §2), construct tfjs's WebGPUBackend on that device and
// register it as 'webgpu'. Every device error (validation, out-of-memory, internal, device lost) is recorded; stages call
// assertNoDeviceError(stage) before they report numbers, so a run never reports values computed after a device error.
import * as tf from '@tensorflow/tfjs-core';
import { LopperError } from '../errors/lopper-error.js';
import type { BackendErrorCode } from './error-codes.js';
import { registerMixedPrecisionKernels, type MixedPrecisionStatus } from './kernels/register.js';
import { registerF32MatMul } from './kernels/matmul-f32.js';
import { setFusedOpsEnabled } from './kernels/fused-ops.js';

export type Precision = 'float32' | 'mixed';

export interface WebGpuInitOptions {
  /**
   * float32 keeps tfjs's exact kernels; mixed routes large matmuls through f16-operand, f32-accumulate tensor-core
   * kernels and runs RMSNorm, SwiGLU and RoPE as fused float32 kernels (kernels/fused-ops.ts).
   */
  precision?: Precision;
  /** Extra Dawn toggles appended to the defaults (comma-separated names). */
  dawnToggles?: string[];
}

export interface WebGpuInfo {
  adapter: string;
  /** A software rasterizer (Mesa lavapipe/llvmpipe, SwiftShader) rather than a GPU: `auto` prefers wasm over it. */
  software: boolean;
  features: string[];
  limits: Record<string, number>;
  precision: Precision;
  /** What precision: mixed actually does on this device (tensor cores used, or why not). */
  mixed: MixedPrecisionStatus | null;
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
  subgroupMinSize: number | null;
  subgroupMaxSize: number | null;
  dawnToggles: string[];
  /** Messages worth showing the user (missing features, fallbacks). */
  notes: string[];
}

export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export type DeviceErrorKind = 'validation' | 'out-of-memory' | 'internal' | 'device-lost';

export interface DeviceErrorRecord {
  kind: DeviceErrorKind;
  message: string;
  /** Stage (or scope name) active when the error was seen, if any. */
  stage: string | null;
  /** tfjs program or pipeline label named in the message, if any. */
  op: string | null;
  /** Bytes tfjs held on the GPU when the error was recorded (live / pooled). */
  bytesInUse: number | null;
  bytesAllocated: number | null;
}

/** Adapter names of software Vulkan/WebGPU implementations (CPU rasterizers, not GPUs). */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader/i;

/** Features lopper asks for when the adapter has them. */
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix', 'timestamp-query'] as const;

/** Limits copied from the adapter so that tfjs and our kernels may use the whole device. */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

// `vulkan_enable_f16_on_nvidia` lifts Dawn's policy block on shader-f16 for NVIDIA (which also drops every f16
// subgroup-matrix config); `allow_unsafe_apis` exposes the experimental subgroup-matrix feature. Mixed precision adds
// disable_robustness and disable_workgroup_init (4–5× on the tensor-core kernels, measured); validation stays on so
// that errors are still caught. All toggles must share one `enable-dawn-features=` entry (later entries replace it).
const BASE_TOGGLES = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'];
const FAST_TOGGLES = ['disable_robustness', 'disable_workgroup_init'];

interface WebGpuState {
  info: WebGpuInfo;
  device: GPUDevice;
  gpu: GPU;
}

let state: WebGpuState | null = null;
let pending: Promise<WebGpuState> | null = null;
const errors: DeviceErrorRecord[] = [];
let currentStage: string | null = null;

/**
 * Creates the Dawn device, registers tfjs's WebGPU backend on it as 'webgpu' and makes it the active backend.
 * Calling it again returns the first result (one device per process; Dawn toggles are fixed at creation).
 */
export async function initWebGpu(opts: WebGpuInitOptions = {}): Promise<WebGpuInfo> {
  const precision: Precision = opts.precision ?? 'float32';
  if (state) {
    if (state.info.precision !== precision) {
      state.info.notes.push(`initWebGpu called again with precision ${precision}; keeping ${state.info.precision}`);
    }
    if (tf.getBackend() !== 'webgpu') await tf.setBackend('webgpu');
    return state.info;
  }
  // LOPPER_DAWN_TOGGLES (comma-separated) adds Dawn toggles for experiments, e.g. skip_validation.
  const envToggles = (process.env.LOPPER_DAWN_TOGGLES ?? '').split(',').map((t) => t.trim()).filter((t) => t.length > 0);
  if (!pending) pending = createState(precision, [...(opts.dawnToggles ?? []), ...envToggles]);
  try {
    state = await pending;
  } finally {
    pending = null;
  }
  return state.info;
}

/**
 * Removes the 'webgpu' tfjs backend and destroys the device so that the process can exit (dawn.node keeps Node alive
 * while its GPU object is referenced). A later initWebGpu() creates a new device.
 */
export async function disposeWebGpu(): Promise<void> {
  if (!state) return;
  const { device } = state;
  state = null;
  if (tf.findBackend('webgpu') !== null || tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  device.destroy();
  const nav = (globalThis as unknown as { navigator?: Record<string, unknown> }).navigator;
  if (nav && 'gpu' in nav) {
    try {
      delete nav.gpu;
    } catch {
      // a non-configurable navigator.gpu stays; the device is destroyed anyway
    }
  }
}

/** True once initWebGpu() has succeeded in this process. */
export function webGpuReady(): boolean {
  return state !== null;
}

/** The device lopper's tfjs backend runs on (for custom kernels); throws before initWebGpu(). */
export function webGpuDevice(): GPUDevice {
  if (!state) throw backendError('LP8008', 'the WebGPU device was requested before initWebGpu() ran');
  return state.device;
}

export function webGpuInfo(): WebGpuInfo | null {
  return state?.info ?? null;
}

async function createState(precision: Precision, extraToggles: string[]): Promise<WebGpuState> {
  const toggles = [...BASE_TOGGLES, ...(precision === 'mixed' ? FAST_TOGGLES : []), ...extraToggles];
  let webgpuModule: { create: (options: string[]) => GPU; globals: object };
  try {
    webgpuModule = (await import('webgpu')) as unknown as typeof webgpuModule;
  } catch (cause) {
    throw backendError('LP8001', `cannot load the Dawn WebGPU binding (npm "webgpu"): ${(cause as Error).message}`, {
      hint: 'install the "webgpu" package, or choose runtime.backend: cpu / wasm',
      cause,
    });
  }
  installGlobals(webgpuModule.globals);
  const gpu = webgpuModule.create([`enable-dawn-features=${toggles.join(',')}`]);
  // tfjs-backend-webgpu looks for navigator.gpu (WebGPUBackend's constructor checks it).
  setNavigatorGpu(gpu);

  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw backendError('LP8001', 'WebGPU found no adapter: no Vulkan driver is visible to Dawn', {
      hint: 'on the GPU machine source .device/gpu-env.sh (Vulkan loader + NVIDIA ICD); on a CPU machine install Mesa ' +
        'lavapipe (mesa-vulkan-drivers from bookworm-backports); or choose runtime.backend: cpu / wasm',
    });
  }
  const notes: string[] = [];
  const adapterFeatures = new Set<string>([...adapter.features] as string[]);
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapterFeatures.has(f));
  for (const f of WANTED_FEATURES) {
    if (!adapterFeatures.has(f)) notes.push(`adapter lacks ${f}`);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      requiredFeatures: requiredFeatures as GPUFeatureName[],
      requiredLimits,
    });
  } catch (cause) {
    throw backendError('LP8002', `the adapter refused a device with features [${requiredFeatures.join(', ')}]: ${(cause as Error).message}`, { cause });
  }
  watchDevice(device);

  const adapterInfo = adapter.info as GPUAdapterInfo & {
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
    subgroupMatrixConfigs?: Iterable<Record<string, unknown>>;
  };
  // The configs are interop objects with getters (JSON.stringify prints {}): copy the fields explicitly.
  const subgroupMatrixConfigs: SubgroupMatrixConfig[] = [];
  if (requiredFeatures.includes('chromium-experimental-subgroup-matrix') && adapterInfo.subgroupMatrixConfigs) {
    for (const c of adapterInfo.subgroupMatrixConfigs) {
      subgroupMatrixConfigs.push({
        componentType: String(c.componentType),
        resultComponentType: String(c.resultComponentType),
        M: Number(c.M),
        N: Number(c.N),
        K: Number(c.K),
      });
    }
  }
  const adapterName = [adapterInfo.vendor, adapterInfo.architecture, adapterInfo.device, adapterInfo.description]
    .filter((s) => typeof s === 'string' && s.length > 0)
    .join(' / ');

  const { WebGPUBackend } = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as {
    WebGPUBackend: new (device: GPUDevice, adapterInfo?: GPUAdapterInfo) => tf.KernelBackend;
  };
  const backend = new WebGPUBackend(device, adapter.info);
  guardReads(backend);
  meterBuffers(backend);
  if (tf.findBackendFactory('webgpu') !== null || tf.findBackend('webgpu') !== null) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => backend, 3);
  if (!(await tf.setBackend('webgpu'))) {
    throw backendError('LP8002', 'tfjs could not initialise its WebGPU backend on the Dawn device');
  }

  const limits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const v = (device.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') limits[name] = v;
  }
  const info: WebGpuInfo = {
    adapter: adapterName || 'unknown adapter',
    software: SOFTWARE_ADAPTER.test(adapterName) || (adapterInfo as { isFallbackAdapter?: boolean }).isFallbackAdapter === true,
    features: [...device.features].map(String).sort(),
    limits,
    precision,
    mixed: null,
    subgroupMatrixConfigs,
    subgroupMinSize: typeof adapterInfo.subgroupMinSize === 'number' ? adapterInfo.subgroupMinSize : null,
    subgroupMaxSize: typeof adapterInfo.subgroupMaxSize === 'number' ? adapterInfo.subgroupMaxSize : null,
    dawnToggles: toggles,
    notes,
  };
  registerF32MatMul();
  if (precision === 'mixed') {
    info.mixed = await registerMixedPrecisionKernels(device, info);
    if (!info.mixed.tensorCores) notes.push(`precision mixed: matmuls stay on tfjs's float32 kernels (${info.mixed.reason}); the fused float32 kernels are used`);
  }
  // A device created for float32 after a mixed one (disposeWebGpu, initWebGpu) must get the composite ops back.
  setFusedOpsEnabled(precision === 'mixed');
  return { info, device, gpu };
}

interface MeteredBufferManager {
  numBytesUsed: number;
  numBytesAllocated: number;
  acquireBuffer(...args: unknown[]): GPUBuffer;
}

/** Buffers handed out since the last boundBufferPool() call (see there). */
let usedSinceBound = new WeakSet<GPUBuffer>();

/** High-water marks of tfjs's GPU buffers, one per open meter (a stage's, and a phase's inside it). */
interface Peaks { inUse: number; allocated: number }
const openMeters = new Set<Peaks>();

/**
 * Every tensor buffer comes from the buffer manager's acquireBuffer(), so the bytes in use and pooled peak right after
 * one returns: recording there catches the peak inside a forward pass, not only between batches.
 */
function meterBuffers(backend: tf.KernelBackend): void {
  const manager = (backend as unknown as { bufferManager: MeteredBufferManager }).bufferManager;
  const acquire = manager.acquireBuffer.bind(manager);
  manager.acquireBuffer = (...args: unknown[]) => {
    const buffer = acquire(...args);
    usedSinceBound.add(buffer);
    for (const peaks of openMeters) {
      if (manager.numBytesUsed > peaks.inUse) peaks.inUse = manager.numBytesUsed;
      if (manager.numBytesAllocated > peaks.allocated) peaks.allocated = manager.numBytesAllocated;
    }
    return buffer;
  };
}

export interface GpuUsage {
  /** Peak bytes of live GPU buffers (tensors, staging) while the meter was open. */
  peakInUseBytes: number;
  /** Peak bytes tfjs held on the GPU, live plus pooled for reuse. */
  peakPooledBytes: number;
  /** Compute pipelines compiled while the meter was open (one per new shader key). */
  pipelinesCompiled: number;
}

function pipelineCount(): number {
  const cache = (tf.backend() as unknown as { pipelineCache?: Record<string, unknown> }).pipelineCache;
  return cache ? Object.keys(cache).length : 0;
}

/** Opens a meter of GPU memory and shader compiles; stop() closes it. Null when WebGPU is not the active backend. */
export function openGpuMeter(): { stop(): GpuUsage } | null {
  if (!state || tf.getBackend() !== 'webgpu') return null;
  const { inUse, allocated } = gpuMemory();
  const peaks: Peaks = { inUse: inUse ?? 0, allocated: allocated ?? 0 };
  const pipelines = pipelineCount();
  openMeters.add(peaks);
  return {
    stop() {
      openMeters.delete(peaks);
      return { peakInUseBytes: peaks.inUse, peakPooledBytes: peaks.allocated, pipelinesCompiled: pipelineCount() - pipelines };
    },
  };
}

/**
 * Every number that reaches the host goes through the backend's read(): refuse to hand out values once the device
 * has reported an error, so that no stage can report numbers computed after one (even one that never calls
 * assertNoDeviceError).
 */
function guardReads(backend: tf.KernelBackend): void {
  const b = backend as unknown as { read(dataId: object): Promise<unknown> };
  const read = b.read.bind(backend);
  b.read = async (dataId: object) => {
    const values = await read(dataId);
    if (errors.length > 0) throwIfErrors(currentStage ?? 'in progress', errors);
    return values;
  };
}

function installGlobals(globals: object): void {
  // tfjs-backend-webgpu uses GPUBuffer, GPUBufferUsage, GPUMapMode… as globals (instanceof checks, usage flags).
  const g = globalThis as Record<string, unknown>;
  for (const [name, value] of Object.entries(globals)) {
    if (g[name] === undefined) g[name] = value;
  }
}

function setNavigatorGpu(gpu: GPU): void {
  const g = globalThis as unknown as { navigator?: Record<string, unknown> };
  const existing = g.navigator;
  if (existing && typeof existing === 'object') {
    try {
      Object.defineProperty(existing, 'gpu', { value: gpu, configurable: true, writable: true });
      if (existing.gpu === gpu) return;
    } catch {
      // fall through: replace the whole navigator object
    }
  }
  Object.defineProperty(globalThis, 'navigator', {
    value: { ...(existing ?? {}), gpu },
    configurable: true,
    writable: true,
  });
}

function watchDevice(device: GPUDevice): void {
  device.addEventListener('uncapturederror', (event) => {
    const err = (event as GPUUncapturedErrorEvent).error;
    recordError(classify(err), err.message);
  });
  void device.lost.then((info) => {
    // 'destroyed' is our own doing (process teardown); anything else is a real loss.
    if (info.reason !== 'destroyed') recordError('device-lost', info.message || 'device lost');
  });
}

function classify(err: GPUError): DeviceErrorKind {
  const name = (err as { constructor?: { name?: string } }).constructor?.name ?? '';
  if (name.includes('OutOfMemory') || /out of memory|OutOfMemory/i.test(err.message)) return 'out-of-memory';
  if (name.includes('Internal')) return 'internal';
  return 'validation';
}

function recordError(kind: DeviceErrorKind, message: string): DeviceErrorRecord {
  const mem = gpuMemory();
  // Dawn names the object in the message, e.g. [ComputePipeline "MatMulPackedProgram"]; tfjs labels pipelines with
  // the program's class name, our kernels with their own names.
  const op = /"([A-Za-z0-9_]+(?:Program|Kernel)[A-Za-z0-9_]*)"/.exec(message)?.[1] ?? null;
  const rec: DeviceErrorRecord = { kind, message, stage: currentStage, op, bytesInUse: mem.inUse, bytesAllocated: mem.allocated };
  errors.push(rec);
  return rec;
}

function gpuMemory(): { inUse: number | null; allocated: number | null } {
  try {
    if (tf.getBackend() !== 'webgpu') return { inUse: null, allocated: null };
    const m = tf.memory() as { numBytesInGPU?: number; numBytesAllocatedInGPU?: number };
    return { inUse: m.numBytesInGPU ?? null, allocated: m.numBytesAllocatedInGPU ?? null };
  } catch {
    return { inUse: null, allocated: null };
  }
}

/** Every device error seen so far in this process (oldest first). */
export function deviceErrors(): readonly DeviceErrorRecord[] {
  return errors;
}

/** Forgets recorded device errors (tests only: a real run must stop at the first one). */
export function clearDeviceErrors(): void {
  errors.length = 0;
}

/** Names the stage that device errors seen from now on are attributed to (null: none). */
export function setDeviceStage(stage: string | null): void {
  currentStage = stage;
}

/**
 * Flushes tfjs's pending GPU work, waits until the queue has run it, and throws a LopperError if any device error was
 * recorded since the process started. Call before reporting numbers from `stage`.
 */
export async function assertNoDeviceError(stage: string): Promise<void> {
  if (state) {
    flushBackend();
    await state.device.queue.onSubmittedWorkDone();
    // Uncaptured errors are delivered as events; give them a turn of the event loop to arrive.
    await new Promise((resolve) => setImmediate(resolve));
  }
  throwIfErrors(stage, errors);
}

function throwIfErrors(stage: string, seen: readonly DeviceErrorRecord[]): void {
  if (seen.length === 0) return;
  const first = seen[0];
  const code: BackendErrorCode =
    first.kind === 'out-of-memory' ? 'LP8004' : first.kind === 'device-lost' ? 'LP8005' : first.kind === 'internal' ? 'LP8006' : 'LP8003';
  const where = first.stage && first.stage !== stage ? ` (first seen during ${first.stage})` : '';
  const op = first.op ? `, op ${first.op}` : '';
  const mem = first.bytesInUse !== null
    ? `, ${formatBytes(first.bytesInUse)} in use on the GPU (${formatBytes(first.bytesAllocated ?? 0)} pooled)`
    : '';
  const more = seen.length > 1 ? ` (+${seen.length - 1} more device error${seen.length > 2 ? 's' : ''})` : '';
  throw backendError(code, `stage ${stage}: GPU ${first.kind} error${where}${op}${mem}: ${first.message.trim()}${more}`, {
    hint: first.kind === 'out-of-memory'
      ? 'reduce batch size or sequence length, or free tensors between steps; the results of this stage were discarded'
      : 'the results of this stage were discarded; rerun with runtime.backend: cpu to compare, and report the message',
  });
}

/**
 * Runs `fn` inside WebGPU error scopes (out-of-memory, validation, internal) and fails with a LopperError naming
 * `stage` if the device reported anything while it ran, including errors of work tfjs submitted late.
 */
export async function withDeviceErrorScope<T>(stage: string, fn: () => T | Promise<T>): Promise<T> {
  if (!state) return await fn();
  const device = state.device;
  const previousStage = currentStage;
  currentStage = stage;
  device.pushErrorScope('internal');
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let result: T;
  let thrown: unknown = null;
  try {
    result = await fn();
  } catch (e) {
    thrown = e;
  }
  flushBackend();
  const scoped: DeviceErrorRecord[] = [];
  for (const kind of ['validation', 'out-of-memory', 'internal'] as const) {
    const err = await device.popErrorScope();
    if (err) scoped.push(recordError(kind, err.message));
  }
  currentStage = previousStage;
  if (scoped.length > 0) throwIfErrors(stage, scoped);
  if (thrown !== null) throw thrown;
  await assertNoDeviceError(stage);
  return result!;
}

/** Submits whatever tfjs has recorded but not yet submitted, so that its errors surface now. */
function flushBackend(): void {
  if (tf.getBackend() !== 'webgpu') return;
  const backend = tf.backend() as unknown as {
    commandEncoder: GPUCommandEncoder | null;
    endComputePassEncoder(): void;
    submitQueue(): void;
  };
  if (backend.commandEncoder) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
}

/**
 * Destroys the GPU buffers tfjs keeps in its pool for reuse (it never frees them: the pool only grows, by exact size),
 * after the queue has finished all submitted work. Live tensors are untouched. Call between phases that use tensors of
 * different sizes (e.g. Taylor scoring, then perplexity windows) so that the pool does not exhaust the device.
 * Returns the bytes released.
 */
export async function releaseFreeGpuBuffers(): Promise<number> {
  return destroyPooled(() => true);
}

/** Destroys the pooled (idle) buffers `doomed` picks, once the queue has finished all submitted work; returns their bytes. */
async function destroyPooled(doomed: (buffer: GPUBuffer) => boolean): Promise<number> {
  if (!state || tf.getBackend() !== 'webgpu') return 0;
  flushBackend();
  await state.device.queue.onSubmittedWorkDone();
  const manager = (tf.backend() as unknown as {
    bufferManager: { freeBuffers: Map<string, GPUBuffer[]>; numFreeBuffers: number; numBytesAllocated: number };
  }).bufferManager;
  let released = 0;
  for (const [key, buffers] of manager.freeBuffers) {
    const kept: GPUBuffer[] = [];
    for (const b of buffers) {
      if (!doomed(b)) { kept.push(b); continue; }
      released += b.size;
      b.destroy();
    }
    manager.numFreeBuffers -= buffers.length - kept.length;
    // Keep the key even when empty: tfjs's releaseBuffer() treats an empty map as "already disposed".
    manager.freeBuffers.set(key, kept);
  }
  manager.numBytesAllocated -= released;
  return released;
}

/** Bytes tfjs holds on the GPU: live tensors and the whole buffer pool. Null when the backend is not webgpu. */
export function webGpuMemory(): { inUse: number | null; allocated: number | null } {
  return gpuMemory();
}

function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${n} B`;
}

function backendError(code: BackendErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}): LopperError {
  return new LopperError(code, message, options);
}

/**
 * Throws LP8007 when a tensor of `bytes` cannot be bound by one shader on this device (tfjs binds whole buffers and
 * never splits them; past the limit it computes garbage). Callers split such tensors (e.g. the LM head over tokens).
 */
export function assertBindable(what: string, bytes: number): void {
  const limit = state?.info.limits.maxStorageBufferBindingSize;
  if (limit !== undefined && bytes > limit) {
    throw backendError('LP8007', `${what} needs ${formatBytes(bytes)} in one GPU binding; this device binds at most ${formatBytes(limit)}`, {
      hint: 'split the tensor (e.g. process fewer tokens at once)',
    });
  }
}


/**
 * Bounds tfjs's pooled (idle) GPU buffers between batches. tfjs pools a released buffer by its exact size and reuses
 * it only for that size, so a loop over varying shapes (zero-shot questions, training batches) grows the pool until
 * the device runs out of memory. Past `maxIdleBytes` idle, the pooled buffers that nothing has used since the previous
 * call are destroyed; buffers the batches since then used stay pooled. A loop of one shape — a
 * training run, perplexity windows — thus keeps its whole working set however large (destroying and recreating tens
 * of GB each step cost seconds a step on the H200), while sizes a loop stopped using are freed one batch later.
 * Returns the bytes released.
 */
export async function boundBufferPool(maxIdleBytes: number): Promise<number> {
  const { inUse, allocated } = gpuMemory();
  const used = usedSinceBound;
  usedSinceBound = new WeakSet<GPUBuffer>();
  if (inUse === null || allocated === null || allocated - inUse <= maxIdleBytes) return 0;
  return destroyPooled((b) => !used.has(b));
}
