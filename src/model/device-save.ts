// Writing a device-resident model as a Hugging Face directory in a chosen dtype.
import type { CheckpointDtype } from './checkpoint-dtype.js';
import { saveModel } from './hf.js';
import type { LlamaModel } from './llama.js';
import type { LlamaConfig, Tokenizer } from './types.js';

export interface DeviceModelToSave {
  config: LlamaConfig;
  model: LlamaModel;
  tokenizer: Tokenizer | null;
  dtype: CheckpointDtype;
}

/** Writes `m` into `dir` (created). 16-bit dtypes first round the device copy in place, so it equals the file. */
export async function saveDeviceModel(dir: string, m: DeviceModelToSave, _opts: { signal?: AbortSignal } = {}): Promise<void> {
  if (m.dtype !== 'float32') throw new Error(`internal: saving ${m.dtype} is not wired yet`);
  await saveModel(dir, { config: m.config, weights: await m.model.weights(), tokenizer: m.tokenizer });
}
