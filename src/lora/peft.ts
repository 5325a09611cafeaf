// PEFT-compatible adapter directory: adapter_config.json + adapter_model.safetensors with PEFT's tensor names
// (`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`), as peft 0.21 `save_pretrained` writes for a
// LlamaForCausalLM (tests/lora/peft-keys.reference.json). `PeftModel.from_pretrained(base, dir)` loads it.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { HostTensor } from '../model/types.js';
import { encodeSafetensors } from '../train/tensor-file.js';
import type { LoraOptions } from './adapters.js';

export const PEFT_PREFIX = 'base_model.model.';

export function adapterConfig(options: LoraOptions, baseModel: string | null): Record<string, unknown> {
  return {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: baseModel, bias: 'none', fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, layers_pattern: null, layers_to_transform: null, loftq_config: {},
    lora_alpha: options.alpha, lora_bias: false, lora_dropout: options.dropout, megatron_config: null,
    megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA', r: options.r, rank_pattern: {},
    revision: null, target_modules: [...options.targets], task_type: 'CAUSAL_LM', use_dora: false, use_rslora: false,
  };
}

/** Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors`. */
export async function writePeftAdapter(dir: string, options: LoraOptions, adapters: Map<string, HostTensor>, baseModel: string | null): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = new Map<string, HostTensor>();
  for (const [name, t] of adapters) tensors.set(PEFT_PREFIX + name, t);
  await writeFile(path.join(dir, 'adapter_model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
  await writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify(adapterConfig(options, baseModel), null, 2) + '\n');
}
