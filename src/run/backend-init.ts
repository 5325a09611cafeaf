// The backend is initialised lazily, once per process, before the first stage that computes: a fully cached run
// never loads tfjs.
import type { Backend, Plan } from '../plan/types.js';

export interface BackendInfo { backend: string; adapter?: string; features?: unknown }
export type Precision = Plan['runtime']['precision'];
export type BackendInit = (kind: Backend, precision: Precision) => Promise<BackendInfo>;

let initialised: Promise<BackendInfo> | undefined;

async function defaultInit(kind: Backend, precision: Precision): Promise<BackendInfo> {
  const spec = '../backend/index.js';
  const mod = (await import(spec)) as { initBackend?: (k: Backend, o: { precision: Precision }) => Promise<Record<string, unknown>> };
  if (typeof mod.initBackend !== 'function') throw new Error('src/backend/index.ts exports no initBackend');
  const r = await mod.initBackend(kind, { precision });
  const adapter = r.adapter;
  return {
    backend: String(r.backend),
    adapter: adapter === undefined ? undefined : typeof adapter === 'string' ? adapter : JSON.stringify(adapter),
    features: r.features,
  };
}

/** Initialises the backend once; later calls (any kind) return the first result. */
export function ensureBackend(kind: Backend, precision: Precision, init: BackendInit = defaultInit): Promise<BackendInfo> {
  initialised ??= init(kind, precision).catch((e) => {
    initialised = undefined;
    throw e;
  });
  return initialised;
}

export function backendIfInitialised(): Promise<BackendInfo> | undefined {
  return initialised;
}

/** Tests only: forget the process-wide backend. */
export function resetBackendForTests(): void {
  initialised = undefined;
}

/**
 * On WebGPU, names the stage in device-error messages while `run` executes, and throws (LP8xxx) if the device
 * reported an error meanwhile, so that no output computed after a device error is committed.
 */
export async function withDeviceChecks<T>(backend: BackendInfo | undefined, stageId: string, run: () => Promise<T>): Promise<T> {
  if (backend?.backend !== 'webgpu') return run();
  const spec = '../backend/webgpu.js';
  const gpu = (await import(spec)) as {
    setDeviceStage(stage: string | null): void;
    assertNoDeviceError(stage: string): Promise<void>;
    releaseFreeGpuBuffers(): Promise<number>;
  };
  gpu.setDeviceStage(stageId);
  try {
    const result = await run();
    await gpu.assertNoDeviceError(stageId);
    return result;
  } finally {
    gpu.setDeviceStage(null);
    // Buffers tfjs pooled for this stage would otherwise stay reserved for the next one (a 7B model needs them back).
    await gpu.releaseFreeGpuBuffers();
  }
}
