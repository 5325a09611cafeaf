// Loading a model into the residency: read the checkpoint, put its weights on the active tfjs backend as model
// variables, and note the checkpoint's dtype (outputs are written in it by default).
import { loadModel, type LoadModelOptions } from './index.js';
import { LlamaModel } from './llama.js';
import type { CheckpointDtype } from './checkpoint-dtype.js';
import type { ResidentFields } from './residency.js';
import { readSafetensorsHeader } from './safetensors.js';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** The float dtype holding most weight bytes of an HF directory (F64 counts as float32; other formats: float32). */
export async function checkpointDtype(dir: string, format: string): Promise<CheckpointDtype> {
  if (format !== 'hf') return 'float32';
  const files = (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort();
  const bytes: Record<CheckpointDtype, number> = { float32: 0, float16: 0, bfloat16: 0 };
  for (const f of files) {
    for (const t of (await readSafetensorsHeader(join(dir, f))).tensors.values()) {
      const d = t.dtype === 'BF16' ? 'bfloat16' : t.dtype === 'F16' ? 'float16' : t.dtype === 'F32' || t.dtype === 'F64' ? 'float32' : null;
      if (d) bytes[d] += t.end - t.begin;
    }
  }
  return (Object.keys(bytes) as CheckpointDtype[]).reduce((a, b) => (bytes[b] > bytes[a] ? b : a), 'float32');
}

/** Reads the model at `path` onto the device (frozen variables; stages that need gradients mark theirs). */
export async function loadResident(path: string, opts: LoadModelOptions): Promise<ResidentFields> {
  const loaded = await loadModel(path, opts);
  const dtype = await checkpointDtype(loaded.source, loaded.format);
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights, { trainable: false });
  loaded.weights.clear();
  return { config: loaded.config, tokenizer: loaded.tokenizer, format: loaded.format, source: loaded.source, dtype, model };
}
