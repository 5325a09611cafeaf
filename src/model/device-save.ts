// Writing a device-resident model as a Hugging Face directory in a chosen dtype, one tensor at a time: for a
// 16-bit dtype the whole model is first rounded on the device (the resident copy then equals the file, bit for bit)
// and each tensor downloaded as 16-bit; float32 tensors are downloaded as they are. The host holds a few tensors.
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

/** Rounds every parameter of `m` to its 16-bit dtype in place (device work only; nothing for float32). */
export function roundDeviceModel(m: DeviceModelToSave): void {
  const kind = halfKindOf(m.dtype);
  if (!kind) return;
  for (const v of m.model.params.values()) {
    tf.tidy(() => { v.assign(tf.reshape(unpack16(pack16(v, kind), v.size, kind), v.shape)); });
  }
}

/** The 16-bit bits of a variable already rounded to `kind` (little-endian, as safetensors stores them). */
async function download16(v: tf.Variable, kind: 'bf16' | 'f16'): Promise<Uint8Array> {
  const packed = pack16(v, kind);
  try {
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

/** Downloads ahead of the writer: at most this many tensors, and this many bytes, in flight. */
const PREFETCH_TENSORS = 4;
const PREFETCH_BYTES = 1.5 * 1024 ** 3;

/**
 * Host bytes downloaded at once when a save starts (LOPPER_WRITE_AHEAD_GB, default 6): the first tensors, up to
 * this size, are copied off the device before any later GPU work is queued. A download otherwise waits behind every
 * batch a concurrent stage queued meanwhile (measured on the H200: a 5.5 GB bf16 save beside an evaluate stage took
 * 32 s one tensor window at a time; the disk alone takes 10 s).
 */
function writeAheadBytes(): number {
  const env = Number(process.env.LOPPER_WRITE_AHEAD_GB);
  return (process.env.LOPPER_WRITE_AHEAD_GB !== undefined && Number.isFinite(env) && env >= 0 ? env : 6) * 1024 ** 3;
}

/**
 * The model's parameters as the writer asks for them (split parameters' row chunks joined). The writer asks in
 * parameter order, so the next few tensors are rounded and downloaded while it writes this one: each download
 * waits for the GPU queue and a map of the staging buffer, and one at a time leaves the GPU and the disk idle.
 */
function deviceSource(m: DeviceModelToSave, signal?: AbortSignal): TensorSource {
  const kind = halfKindOf(m.dtype);
  const shapes = parameterShapes(m.config);
  const order = [...shapes.keys()];
  const bytesOf = (name: string) => shapes.get(name)!.reduce((a, d) => a * d, 1) * (kind ? 2 : 4);
  const download = async (name: string): Promise<HostTensor | Raw16Tensor> => {
    const vars = m.model.variablesOf(name);
    const shape = shapes.get(name)!;
    if (kind) {
      const parts = await Promise.all(vars.map((v) => download16(v, kind)));
      return { dtype: kind === 'bf16' ? 'BF16' : 'F16', shape, bytes: concat(parts, (n) => new Uint8Array(n)) };
    }
    const parts = await Promise.all(vars.map(async (v) => (await v.data()) as Float32Array));
    return { shape, data: concat(parts, (n) => new Float32Array(n)) };
  };
  const ahead = new Map<string, Promise<HostTensor | Raw16Tensor>>();
  const start = (name: string) => {
    const p = download(name);
    p.catch(() => undefined); // awaited when the writer asks; an abandoned save must not leave an unhandled rejection
    ahead.set(name, p);
  };
  // Synchronously, before the caller queues anything else on the device.
  let upfront = 0;
  for (const name of order) {
    if (upfront + bytesOf(name) > writeAheadBytes()) break;
    start(name);
    upfront += bytesOf(name);
  }
  return {
    shapes,
    async read(name): Promise<HostTensor | Raw16Tensor> {
      if (signal?.aborted) throw new StageCancelled('save');
      if (!ahead.has(name)) start(name);
      const at = order.indexOf(name);
      let bytes = [...ahead.keys()].reduce((a, n) => a + bytesOf(n), 0);
      for (let i = at + 1; i < order.length && ahead.size < PREFETCH_TENSORS; i++) {
        const next = order[i]!;
        if (ahead.has(next)) continue;
        if (bytes + bytesOf(next) > PREFETCH_BYTES) break;
        start(next);
        bytes += bytesOf(next);
      }
      const tensor = ahead.get(name)!;
      ahead.delete(name);
      return tensor;
    },
  };
}

/**
 * Writes `m` into `dir` (created) in `m.dtype`. 16-bit dtypes round the device copy in place first, so it equals the
 * file; with `rounded`, the caller did that already (roundDeviceModel) and may compute on the model while this writes.
 */
export async function saveDeviceModel(dir: string, m: DeviceModelToSave, opts: { signal?: AbortSignal; rounded?: boolean } = {}): Promise<void> {
  if (!opts.rounded) roundDeviceModel(m);
  await saveModel(dir, { config: m.config, weights: deviceSource(m, opts.signal), tokenizer: m.tokenizer }, { dtype: m.dtype });
}
