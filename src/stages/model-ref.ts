// Models a stage names, through ctx.model (so the `models:` entry's `tokenizer:` and `format:` reach the loader)
// and the model residency (so a model is read from disk once per process and shared by key).
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel } from '../model/index.js';
import { loadResident } from '../model/device-load.js';
import { readHfConfigFile } from '../model/hf.js';
import { countParameters } from '../model/config.js';
import { sharedResidency, type ModelLease, type ResidentModel } from '../model/residency.js';
import type { LlamaConfig, LoadedModel } from '../model/types.js';
import type { ModelRef, StageContext } from './types.js';

/** The loader options of a model reference. */
export function loadOptions(ref: ModelRef): { tokenizer?: string; format?: ModelRef['format'] } {
  return { ...(ref.tokenizer !== undefined ? { tokenizer: ref.tokenizer } : {}), ...(ref.format !== undefined ? { format: ref.format } : {}) };
}

/** Residency key of a model reference: its content key, or its path (and loader options) in hand-built contexts. */
export function residencyKey(ref: ModelRef): string {
  return ref.key ?? `path:${JSON.stringify([ref.path, ref.tokenizer ?? null, ref.format ?? null])}`;
}

/** Loads the model `ref` names into host memory (for the few callers that need host weights). */
export function loadModelRef(ctx: StageContext, ref: string): Promise<LoadedModel> {
  const m = ctx.model(ref);
  return loadModel(m.path, loadOptions(m));
}

/** A Hugging Face directory's config.json path, or null for other formats. */
async function hfConfigPath(m: ModelRef): Promise<string | null> {
  if (m.format === 'llama2c' || m.format === 'gguf') return null;
  const path = join(m.path, 'config.json');
  return (await stat(path).then((s) => s.isFile(), () => false)) ? path : null;
}

/**
 * The resident copy of the model `ref` names, loaded onto the device if no stage of this process has it yet. A load
 * first makes room for the model's float32 size (from config.json alone), so resident models that no stage holds
 * are evicted before the device has to hold both.
 */
export async function acquireModel(ctx: StageContext, ref: string): Promise<ModelLease> {
  const m = ctx.model(ref);
  const room = ctx.residency ?? sharedResidency();
  const key = residencyKey(m);
  let expected = 0;
  if (!room.has(key)) {
    const config = await hfConfigPath(m);
    if (config) expected = countParameters(await readHfConfigFile(m.path)) * 4;
  }
  return room.acquire(key, () => loadResident(m.path, loadOptions(m)), expected);
}

/** Runs `use` with the resident model `ref` names, releasing it afterwards (also on error or cancellation). */
export async function withModel<T>(ctx: StageContext, ref: string, use: (model: ResidentModel) => Promise<T>): Promise<T> {
  const lease = await acquireModel(ctx, ref);
  try {
    return await use(lease.resident);
  } finally {
    lease.release();
  }
}

/** A model's config without reading its weights: from the residency, or config.json of a Hugging Face directory. */
export async function modelConfig(ctx: StageContext, ref: string): Promise<LlamaConfig> {
  const m = ctx.model(ref);
  const room = ctx.residency ?? sharedResidency();
  if (room.has(residencyKey(m))) return withModel(ctx, ref, async (r) => r.config);
  if (await hfConfigPath(m)) return readHfConfigFile(m.path);
  return (await loadModel(m.path, loadOptions(m))).config;
}
