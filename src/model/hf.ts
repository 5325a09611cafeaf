// Hugging Face model directories: config.json + model.safetensors, or sharded with model.safetensors.index.json.
// Headers are validated against the config before any data is read; tensors stream shard by shard into the
// weight map (one copy in memory). Writer: config.json (per-layer width lists when layers differ),
// model.safetensors, generation_config.json, tokenizer files.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import { parameterShapes, readHfConfig, toHfConfig } from './config.js';
import { checkWeights } from './llama.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensors.js';
import type { LlamaConfig, Tokenizer, WeightMap } from './types.js';

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
  const { access } = await import('node:fs/promises');
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

/** Reads the weights of an HF directory, validating names and shapes against `config`. */
export async function readHfWeights(dir: string, config: LlamaConfig): Promise<WeightMap> {
  const expected = parameterShapes(config);
  const files = await shardFiles(dir);
  const seenIn = new Map<string, string>();
  // Validate every header first, so a bad shape in the last shard fails before gigabytes are read.
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
      if (!['F32', 'F16', 'BF16', 'F64'].includes(entry.dtype)) {
        throw new LopperError('LP3007', `${file}: tensor "${name}" has dtype ${entry.dtype}; model weights must be F32, F16, BF16 or F64`);
      }
      const prev = seenIn.get(name);
      if (prev) throw new LopperError('LP3010', `${file}: tensor "${name}" also appears in ${prev}`);
      seenIn.set(name, file);
    }
  }
  for (const name of expected.keys()) {
    if (!seenIn.has(name)) throw new LopperError('LP3009', `${files.length === 1 ? files[0] : dir}: parameter "${name}" is missing`);
  }
  const raw = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const file of files) {
    await readSafetensors(file, {
      filter: (name) => !ignorable(name, config),
      onTensor: (name, t) => { raw.set(name, { shape: t.shape, data: t.data as Float32Array }); },
    });
  }
  // Canonical order.
  const weights: WeightMap = new Map();
  for (const name of expected.keys()) weights.set(name, raw.get(name)!);
  return weights;
}

export interface SaveModelInput {
  config: LlamaConfig;
  weights: WeightMap;
  tokenizer: Tokenizer | null;
}

/** Writes a Hugging Face model directory (creating it). */
export async function saveModel(dir: string, model: SaveModelInput): Promise<void> {
  const abs = resolve(dir);
  checkWeights(model.config, model.weights, abs);
  try {
    await mkdir(abs, { recursive: true });
  } catch (e) {
    throw new LopperError('LP3016', `${abs}: cannot create directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const ordered = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of parameterShapes(model.config).keys()) ordered.set(name, model.weights.get(name)!);
  await writeSafetensors(join(abs, 'model.safetensors'), ordered, { format: 'pt' });
  const write = async (name: string, data: string | Uint8Array) => {
    try {
      await writeFile(join(abs, name), data);
    } catch (e) {
      throw new LopperError('LP3016', `${join(abs, name)}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  };
  await write('config.json', JSON.stringify(toHfConfig(model.config), null, 2) + '\n');
  await write('generation_config.json', JSON.stringify({ bos_token_id: model.config.bosTokenId, eos_token_id: model.config.eosTokenId }, null, 2) + '\n');
  if (model.tokenizer) for (const [name, bytes] of model.tokenizer.files()) await write(name, bytes);
}

export function modelDirOf(path: string): string {
  return path.endsWith('.safetensors') ? dirname(path) : path;
}
