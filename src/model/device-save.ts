// Writing a device-resident model as a Hugging Face directory in a chosen dtype, one tensor at a time: for a
// 16-bit dtype each tensor is rounded on the device (the resident copy then equals the file, bit for bit) and
// downloaded as 16-bit; float32 tensors are downloaded as they are. The host holds a few tensors at most.
import * as tf from '@tensorflow/tfjs-core';
import { bytesFromPackedWords, pack16, unpack16 } from '../backend/pack16.js';
import { StageCancelled } from '../errors/lopper-error.js';
import { halfKindOf, type HfDtype } from './dtype.js';
import { saveModel, type TensorSource } from './hf.js';
import type { LlamaModel } from './llama.js';
import type { Raw16Tensor } from './raw-tensor.js';
import type { HostTensor, LlamaConfig, Tokenizer } from './types.js';
import { parameterShapes } from './config.js';

export interface DeviceModelToSave {
  config: LlamaConfig;
  model: LlamaModel;
  tokenizer: Tokenizer | null;
  dtype: HfDtype;
}

/** Rounds a variable to 16 bits in place and returns its 16-bit bits (little-endian, as safetensors stores them). */
async function roundAndDownload(v: tf.Variable, kind: 'bf16' | 'f16'): Promise<Uint8Array> {
  const packed = pack16(v, kind);
  try {
    v.assign(tf.tidy(() => tf.reshape(unpack16(packed, v.size, kind), v.shape)));
    return bytesFromPackedWords((await packed.data()) as Int32Array, v.size);
  } finally {
    packed.dispose();
  }
}

/** Joins the row chunks of a split parameter (one part is returned as it is). */
function concat<T extends Uint8Array | Float32Array>(parts: T[], make: (length: number) => T): T {
  if (parts.length === 1) return parts[0]!;
  const out = make(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** The model's parameters as the writer asks for them (split parameters' row chunks joined). */
function deviceSource(m: DeviceModelToSave, signal?: AbortSignal): TensorSource {
  const kind = halfKindOf(m.dtype);
  const shapes = parameterShapes(m.config);
  return {
    shapes,
    async read(name): Promise<HostTensor | Raw16Tensor> {
      if (signal?.aborted) throw new StageCancelled('save');
      const vars = m.model.variablesOf(name);
      const shape = shapes.get(name)!;
      if (kind) {
        const parts: Uint8Array[] = [];
        for (const v of vars) parts.push(await roundAndDownload(v, kind));
        return { dtype: kind === 'bf16' ? 'BF16' : 'F16', shape, bytes: concat(parts, (n) => new Uint8Array(n)) };
      }
      const parts: Float32Array[] = [];
      for (const v of vars) parts.push((await v.data()) as Float32Array);
      return { shape, data: concat(parts, (n) => new Float32Array(n)) };
    },
  };
}

/** Writes `m` into `dir` (created) in `m.dtype`. 16-bit dtypes round the device copy in place, so it equals the file. */
export async function saveDeviceModel(dir: string, m: DeviceModelToSave, opts: { signal?: AbortSignal } = {}): Promise<void> {
  await saveModel(dir, { config: m.config, weights: deviceSource(m, opts.signal), tokenizer: m.tokenizer }, { dtype: m.dtype });
}
