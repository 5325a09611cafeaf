// Loading a model into the residency: stream the checkpoint's tensors from disk straight onto the active tfjs
// backend. 16-bit weights travel as 16-bit (two per int32 word) and are widened to float32 by a kernel on the
// device, so the host holds only the few tensors in flight, never a float32 copy of the model.
import { dirname, join, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { packed16FromBytes, unpack16 } from '../backend/pack16.js';
import { DeviceUploader } from '../backend/upload.js';
import { detectFormat, loadModel, type LoadModelOptions } from './index.js';
import { hfCheckpointDtype, readHfConfigFile, streamHfWeights } from './hf.js';
import { LlamaModel, backendMaxTensorBytes } from './llama.js';
import { rawToFloat32, type RawTensor } from './raw-tensor.js';
import type { ResidentFields } from './residency.js';
import { loadTokenizer } from './tokenizer.js';
import type { Tokenizer } from './types.js';

/** One tensor on the device as float32 (row chunks when its float32 form is over the per-tensor limit). */
async function deviceTensor(raw: RawTensor, limit: number | null, uploader: DeviceUploader | null): Promise<tf.Tensor[]> {
  const numel = raw.shape.reduce((a, d) => a * d, 1);
  const kind = raw.dtype === 'BF16' ? 'bf16' : raw.dtype === 'F16' ? 'f16' : null;
  if (kind && (limit === null || numel * 4 <= limit)) {
    const packed = uploader ? await uploader.tensor(raw.bytes, [Math.ceil(numel / 2)], 'int32') : packed16FromBytes(raw.bytes).packed;
    try {
      return [tf.tidy(() => tf.reshape(unpack16(packed, numel, kind), raw.shape))];
    } finally {
      packed.dispose();
    }
  }
  const data = rawToFloat32(raw);
  const upload = async (values: Float32Array, shape: number[]): Promise<tf.Tensor> => uploader
    ? uploader.tensor(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), shape, 'float32')
    : tf.tensor(values, shape, 'float32');
  if (limit === null || numel * 4 <= limit || raw.shape.length !== 2) return [await upload(data, raw.shape)];
  // Over the limit (a large vocabulary's embedding): row chunks, which LlamaModel keeps as they are.
  const [rows, cols] = raw.shape as [number, number];
  const chunkRows = Math.max(1, Math.floor(limit / (cols * 4)));
  const parts: tf.Tensor[] = [];
  for (let r = 0; r < rows; r += chunkRows) {
    const n = Math.min(chunkRows, rows - r);
    parts.push(await upload(data.subarray(r * cols, (r + n) * cols), [n, cols]));
  }
  return parts;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Streams a Hugging Face directory onto the device. */
async function loadHfResident(dir: string, opts: LoadModelOptions): Promise<ResidentFields> {
  const config = await readHfConfigFile(dir);
  const limit = backendMaxTensorBytes();
  const tensors = new Map<string, tf.Tensor[]>();
  const uploader = DeviceUploader.available() ? new DeviceUploader() : null;
  try {
    await streamHfWeights(dir, config, async (name, raw) => { tensors.set(name, await deviceTensor(raw, limit, uploader)); });
    const model = LlamaModel.fromDeviceTensors(config, tensors, { trainable: false });
    let tokenizer: Tokenizer | null = null;
    if (opts.tokenizer) tokenizer = await loadTokenizer(resolve(opts.tokenizer));
    else if (await exists(join(dir, 'tokenizer.json'))) tokenizer = await loadTokenizer(dir);
    return { config, tokenizer, format: 'hf', source: dir, dtype: await hfCheckpointDtype(dir), model };
  } finally {
    for (const parts of tensors.values()) for (const t of parts) t.dispose();
    await uploader?.close();
  }
}

/** Reads the model at `path` onto the device (frozen variables; stages that need gradients mark theirs). */
export async function loadResident(path: string, opts: LoadModelOptions): Promise<ResidentFields> {
  const source = resolve(path);
  const format = opts.format ?? (await detectFormat(source));
  if (format === 'hf') return loadHfResident(source.endsWith('.safetensors') ? dirname(source) : source, opts);
  // llama2.c and GGUF checkpoints are float32 or quantized files lopper reads whole (small models in practice).
  const loaded = await loadModel(source, { ...opts, format });
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights, { trainable: false });
  loaded.weights.clear();
  return { config: loaded.config, tokenizer: loaded.tokenizer, format: loaded.format, source: loaded.source, dtype: 'float32', model };
}
