// Writes a Hugging Face model directory the way transformers' save_pretrained lays it out: config.json (with
// torch_dtype set to the saved dtype), model.safetensors or model-0000k-of-0000n.safetensors shards plus
// model.safetensors.index.json, generation_config.json and the tokenizer files. Weights come from a host
// WeightMap or from a per-tensor async source, so a model resident on a GPU is downloaded one tensor at a
// time while it is written. The target directory is expected to be new (callers write into a fresh temp
// directory and rename it): shards of an earlier save with a different count are not removed.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import { parameterShapes, toHfConfig } from './config.js';
import { FLOAT_DTYPE_BYTES, SAFETENSORS_DTYPE, type HfDtype } from './dtype.js';
import { checkWeights } from './llama.js';
import { numelOf, type Raw16Tensor } from './raw-tensor.js';
import { writeSafetensorsFrom, type TensorLayout, type WritableTensor } from './safetensors-write.js';
import { DEFAULT_MAX_SHARD_BYTES, planShards, shardIndexJson } from './shards.js';
import type { HostTensor, LlamaConfig, Tokenizer, WeightMap } from './types.js';

/** Parameters produced on demand, one at a time (e.g. downloaded from a GPU as the writer reaches them). */
export interface TensorSource {
  /** Shape of every parameter; the names must be exactly the config's parameters. */
  shapes: Map<string, number[]>;
  /**
   * The tensor's data: float32 values, or 16-bit bits (written unchanged when they match the saved dtype);
   * `release` is called once the data's writes have ended.
   */
  read(name: string): Promise<(HostTensor | Raw16Tensor) & { release?: () => void }>;
}

export interface SaveModelInput {
  config: LlamaConfig;
  weights: WeightMap | TensorSource;
  tokenizer: Tokenizer | null;
}

export interface SaveModelOptions {
  /** dtype of the saved weights (default float32); float32 input is rounded to nearest even. */
  dtype?: HfDtype;
  /** Largest shard in tensor bytes before a new one starts (default 5 GB, transformers' "5GB"). */
  maxShardBytes?: number;
  /** Bytes of writes in flight per file (default 256 MiB). */
  maxBytesInFlight?: number;
}

/** Writes a Hugging Face model directory (creating it). */
export async function saveModel(dir: string, model: SaveModelInput, opts: SaveModelOptions = {}): Promise<void> {
  const abs = resolve(dir);
  const source = asSource(model, abs);
  const dtype = opts.dtype ?? 'float32';
  const fileDtype = SAFETENSORS_DTYPE[dtype];
  try {
    await mkdir(abs, { recursive: true });
  } catch (e) {
    throw new LopperError('LP3016', `${abs}: cannot create directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const layout = new Map<string, TensorLayout>();
  for (const name of parameterShapes(model.config).keys()) layout.set(name, { name, dtype: fileDtype, shape: source.shapes.get(name)! });
  const plan = planShards([...layout.values()].map((t) => ({ name: t.name, bytes: numelOf(t.shape) * FLOAT_DTYPE_BYTES[fileDtype] })),
    opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
  const read = async (name: string): Promise<WritableTensor> => source.read(name);
  const writeOpts = opts.maxBytesInFlight !== undefined ? { maxBytesInFlight: opts.maxBytesInFlight } : {};
  for (const shard of plan.shards) {
    await writeSafetensorsFrom(join(abs, shard.file), shard.names.map((n) => layout.get(n)!), read, { format: 'pt' }, writeOpts);
  }
  const index = shardIndexJson(plan);
  if (index !== null) await writeText(abs, 'model.safetensors.index.json', index);
  await writeText(abs, 'config.json', JSON.stringify(hfConfigJson(model.config, dtype), null, 2) + '\n');
  await writeText(abs, 'generation_config.json', JSON.stringify({ bos_token_id: model.config.bosTokenId, eos_token_id: model.config.eosTokenId }, null, 2) + '\n');
  if (model.tokenizer) for (const [name, bytes] of model.tokenizer.files()) await writeText(abs, name, bytes);
}

/** toHfConfig with the saved dtype winning over whatever dtype the source config.json named. */
function hfConfigJson(config: LlamaConfig, dtype: HfDtype): Record<string, unknown> {
  const out = toHfConfig(config);
  out.torch_dtype = dtype;
  // transformers ≥ 4.56 writes `dtype` instead; keep the two in agreement when the source had it.
  if ('dtype' in out) out.dtype = dtype;
  return out;
}

/** A WeightMap (checked like LlamaModel.fromWeights checks it) or a TensorSource with checked shapes. */
function asSource(model: SaveModelInput, where: string): TensorSource {
  const weights = model.weights;
  if (weights instanceof Map) {
    checkWeights(model.config, weights, where);
    const shapes = new Map([...weights].map(([name, t]) => [name, t.shape]));
    return { shapes, read: async (name) => weights.get(name)! };
  }
  checkShapes(model.config, weights.shapes, where);
  return weights;
}

function checkShapes(config: LlamaConfig, shapes: Map<string, number[]>, where: string): void {
  const expected = parameterShapes(config);
  for (const [name, shape] of expected) {
    const got = shapes.get(name);
    if (!got) throw new LopperError('LP3009', `${where}: parameter "${name}" (shape ${JSON.stringify(shape)}) is missing`);
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new LopperError('LP3008', `${where}: tensor "${name}" has shape ${JSON.stringify(got)} but the config implies ${JSON.stringify(shape)}`);
    }
  }
  for (const name of shapes.keys()) {
    if (!expected.has(name)) throw new LopperError('LP3010', `${where}: tensor "${name}" is not a parameter of this config`);
  }
}

async function writeText(dir: string, name: string, data: string | Uint8Array): Promise<void> {
  try {
    await writeFile(join(dir, name), data);
  } catch (e) {
    throw new LopperError('LP3016', `${join(dir, name)}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
