// The backend is initialised lazily, once per process, before the first stage that computes: a fully cached run
// never loads tfjs.
import type { Backend } from '../plan/types.js';

export interface BackendInfo { backend: string; adapter?: string; features?: unknown }
export type BackendInit = (kind: Backend) => Promise<BackendInfo>;

let initialised: Promise<BackendInfo> | undefined;

async function defaultInit(kind: Backend): Promise<BackendInfo> {
  const spec = '../backend/index.js';
  const mod = (await import(spec)) as { initBackend?: (k: Backend) => Promise<Record<string, unknown>> };
  if (typeof mod.initBackend !== 'function') throw new Error('src/backend/index.ts exports no initBackend');
  const r = await mod.initBackend(kind);
  const adapter = r.adapter;
  return {
    backend: String(r.backend),
    adapter: adapter === undefined ? undefined : typeof adapter === 'string' ? adapter : JSON.stringify(adapter),
    features: r.features,
  };
}

/** Initialises the backend once; later calls (any kind) return the first result. */
export function ensureBackend(kind: Backend, init: BackendInit = defaultInit): Promise<BackendInfo> {
  initialised ??= init(kind).catch((e) => {
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
