// Hugging Face model directories: config.json + model.safetensors, or sharded with model.safetensors.index.json.
// Headers are validated against the config before any data is read; tensors then stream shard by shard, as raw
// bytes in the checkpoint's dtype (streamHfWeights) or converted one tensor at a time into a float32 weight map
// (readHfWeights). The writer (saveModel) lives in hf-save.ts.
import { access, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import { parameterShapes, readHfConfig } from './config.js';
import { HF_DTYPE, type FloatDtype, type HfDtype } from './dtype.js';
import { rawToFloat32, type RawTensor } from './raw-tensor.js';
import { readSafetensorsHeader, streamSafetensors, type StreamSafetensorsOptions } from './safetensors.js';
import type { HostTensor, LlamaConfig, WeightMap } from './types.js';

async function readJson(path: string, code: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    throw new LopperError(code, `${path}: cannot read ${what} (${c ?? (e as Error).message})`,
      c === 'ENOENT' ? { hint: 'A Hugging Face model directory holds config.json and model.safetensors (or model.safetensors.index.json).' } : {});
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new LopperError(code, `${path}: ${what} is not valid JSON (${(e as Error).message})`);
  }
}

export async function readHfConfigFile(dir: string): Promise<LlamaConfig> {
  const path = join(dir, 'config.json');
  return readHfConfig(await readJson(path, 'LP3003', 'config.json'), path);
}

/** Tensors HF checkpoints may carry that are not parameters (recomputed buffers), skipped on load. */
function ignorable(name: string, config: LlamaConfig): boolean {
  return name.endsWith('.rotary_emb.inv_freq') || (config.tieWordEmbeddings && name === 'lm_head.weight');
}

async function shardFiles(dir: string): Promise<string[]> {
  const single = join(dir, 'model.safetensors');
  const indexPath = join(dir, 'model.safetensors.index.json');
  const exists = async (p: string) => access(p).then(() => true, () => false);
  if (await exists(indexPath)) {
    const index = await readJson(indexPath, 'LP3013', 'the shard index') as { weight_map?: unknown };
    if (typeof index !== 'object' || index === null || typeof index.weight_map !== 'object' || index.weight_map === null) {
      throw new LopperError('LP3013', `${indexPath}: no "weight_map" object`);
    }
    const files = [...new Set(Object.values(index.weight_map as Record<string, unknown>))];
    for (const f of files) {
      if (typeof f !== 'string' || f.includes('/') || f.includes('\\') || f.startsWith('.')) {
        throw new LopperError('LP3013', `${indexPath}: weight_map names an invalid shard file ${JSON.stringify(f)}`);
      }
      if (!(await exists(join(dir, f)))) throw new LopperError('LP3013', `${indexPath}: shard "${f}" does not exist in ${dir}`);
    }
    return (files as string[]).sort().map((f) => join(dir, f));
  }
  if (await exists(single)) return [single];
  if (await exists(join(dir, 'pytorch_model.bin')) || await exists(join(dir, 'pytorch_model.bin.index.json'))) {
    throw new LopperError('LP3002', `${dir}: holds PyTorch pickle weights (pytorch_model.bin), which lopper does not read`,
      { hint: 'Convert to safetensors: `model.save_pretrained(dir, safe_serialization=True)` in transformers.' });
  }
  throw new LopperError('LP3009', `${dir}: no model.safetensors or model.safetensors.index.json`);
}

/** Where one parameter lives in an HF checkpoint, from the validated shard headers. */
export interface HfTensorInfo {
  file: string;
  dtype: string;
  shape: number[];
  bytes: number;
}

const WEIGHT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/**
 * Validates every shard header of an HF directory against `config` (names, shapes, float dtypes, duplicates,
 * missing parameters) without reading tensor data, so a bad shape in the last shard fails before gigabytes are
 * read. Returns the parameters in canonical (parameterShapes) order.
 */
export async function hfTensorManifest(dir: string, config: LlamaConfig): Promise<Map<string, HfTensorInfo>> {
  const expected = parameterShapes(config);
  const files = await shardFiles(dir);
  const found = new Map<string, HfTensorInfo>();
  for (const file of files) {
    const header = await readSafetensorsHeader(file);
    for (const [name, entry] of header.tensors) {
      if (ignorable(name, config)) continue;
      const shape = expected.get(name);
      if (!shape) {
        throw new LopperError('LP3010', `${file}: tensor "${name}" is not a parameter of the model config.json describes`,
          { hint: 'The config and the weights belong to different models, or a per-layer width list is missing from config.json.' });
      }
      if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
        throw new LopperError('LP3008', `${file}: tensor "${name}" has shape ${JSON.stringify(entry.shape)} but config.json implies ${JSON.stringify(shape)}`);
      }
      if (!WEIGHT_DTYPES.has(entry.dtype)) {
        throw new LopperError('LP3007', `${file}: tensor "${name}" has dtype ${entry.dtype}; model weights must be F32, F16, BF16 or F64`);
      }
      const prev = found.get(name);
      if (prev) throw new LopperError('LP3010', `${file}: tensor "${name}" also appears in ${prev.file}`);
      found.set(name, { file, dtype: entry.dtype, shape: entry.shape, bytes: entry.end - entry.begin });
    }
  }
  const manifest = new Map<string, HfTensorInfo>();
  for (const name of expected.keys()) {
    const info = found.get(name);
    if (!info) throw new LopperError('LP3009', `${files.length === 1 ? files[0] : dir}: parameter "${name}" is missing`);
    manifest.set(name, info);
  }
  return manifest;
}

/** Read-ahead bytes, concurrent reads and read piece size, per shard, as in streamSafetensors. */
export type StreamHfWeightsOptions = Omit<StreamSafetensorsOptions, 'filter' | 'onTensor'>;

/**
 * Streams every parameter of an HF directory as raw bytes in the checkpoint's dtype, after validating all shard
 * headers (the same LP30xx errors as readHfWeights). Shards are read one after another, each in file order, so
 * tensors arrive in file order rather than parameter order; host memory holds at most the read-ahead window
 * plus what the consumer keeps. Non-parameter buffers (rotary inv_freq, a tied lm_head) are skipped.
 */
export async function streamHfWeights(
  dir: string, config: LlamaConfig, onTensor: (name: string, tensor: RawTensor) => void | Promise<void>,
  opts: StreamHfWeightsOptions = {},
): Promise<Map<string, HfTensorInfo>> {
  const manifest = await hfTensorManifest(dir, config);
  const files = [...new Set([...manifest.values()].map((t) => t.file))];
  for (const file of files) await streamSafetensors(file, { ...opts, filter: (name) => manifest.get(name)?.file === file, onTensor });
  return manifest;
}

/** Reads the weights of an HF directory into host float32, validating names and shapes against `config`. */
export async function readHfWeights(dir: string, config: LlamaConfig): Promise<WeightMap> {
  const raw = new Map<string, HostTensor>();
  const manifest = await streamHfWeights(dir, config, (name, t) => {
    raw.set(name, { shape: t.shape, data: rawToFloat32(t, `${dir}: tensor "${name}"`) });
  });
  // Canonical order.
  const weights: WeightMap = new Map();
  for (const name of manifest.keys()) weights.set(name, raw.get(name)!);
  return weights;
}

/**
 * The float dtype holding most parameter bytes in an HF directory's headers (F64 counts as float32; a tie
 * prefers float32, then bfloat16). Reads headers only.
 */
export async function hfCheckpointDtype(dir: string): Promise<HfDtype> {
  const bytes: Record<HfDtype, number> = { float32: 0, bfloat16: 0, float16: 0 };
  for (const file of await shardFiles(dir)) {
    for (const t of (await readSafetensorsHeader(file)).tensors.values()) {
      const dtype = t.dtype === 'F64' ? 'float32' : HF_DTYPE[t.dtype as FloatDtype];
      if (dtype) bytes[dtype] += t.end - t.begin;
    }
  }
  return (Object.keys(bytes) as HfDtype[]).reduce((best, d) => (bytes[d] > bytes[best] ? d : best), 'float32');
}

export { saveModel, type SaveModelInput, type SaveModelOptions, type TensorSource } from './hf-save.js';

export function modelDirOf(path: string): string {
  return path.endsWith('.safetensors') ? dirname(path) : path;
}
