// Public surface of src/model: load a model in any supported format, save one in Hugging Face layout, and run it.
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { open } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import { readHfConfigFile, readHfWeights } from './hf.js';
import { readLlama2c } from './llama2c.js';
import { readGguf } from './gguf.js';
import { loadTokenizer } from './tokenizer.js';
import { loadLlama2cTokenizer } from './llama2c-tokenizer.js';
import type { LoadedModel, ModelFormat, Tokenizer } from './types.js';

export type { HostTensor, LayerShape, LlamaConfig, LoadedModel, ModelFormat, RopeScaling, Tokenizer, WeightMap } from './types.js';
export { LlamaModel, initWeights, checkWeights, LOGITS_CHUNK_ELEMENTS, backendMaxTensorBytes, chunkKey, type ForwardOptions, type FromWeightsOptions, type LinearHook } from './llama.js';
export { readHfConfig, toHfConfig, countParameters, parameterShapes, isUniform, attentionBiasProjections } from './config.js';
export {
  readSafetensors, readSafetensorsHeader, streamSafetensors, writeSafetensors, writeSafetensorsFrom,
  type RawTensor, type SafetensorsTensor, type StreamSafetensorsOptions, type TensorLayout, type WritableTensor, type WriteSafetensorsOptions,
} from './safetensors.js';
export { rawToFloat32, rawToInt32, type Raw16Tensor } from './raw-tensor.js';
export { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16, type FloatDtype, type HfDtype } from './dtype.js';
export { hfCheckpointDtype, hfTensorManifest, streamHfWeights, type HfTensorInfo, type StreamHfWeightsOptions } from './hf.js';
export { loadTokenizer, hfTokenizerFromBytes } from './tokenizer.js';
export { Llama2cTokenizer, loadLlama2cTokenizer, hfTokenizerJson } from './llama2c-tokenizer.js';
export { saveModel, type SaveModelInput, type SaveModelOptions, type TensorSource } from './hf.js';
export { modelErrorCodes } from './error-codes.js';

export interface LoadModelOptions {
  /** Tokenizer file (tokenizer.json or llama2.c .bin); default: the one in or next to the model. */
  tokenizer?: string;
  /** Skip format detection. */
  format?: ModelFormat;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Detects a model's format: a directory is Hugging Face; a file is GGUF by magic, llama2.c by `.bin`. */
export async function detectFormat(path: string): Promise<ModelFormat> {
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new LopperError('LP3001', `${path}: model path does not exist`);
  }
  if (st.isDirectory()) {
    if (await exists(join(path, 'config.json'))) return 'hf';
    const files = await readdir(path);
    const gguf = files.filter((f) => f.endsWith('.gguf'));
    if (gguf.length > 0 || files.some((f) => f.endsWith('.bin'))) {
      throw new LopperError('LP3002', `${path}: a directory without config.json; name the model file itself (${[...gguf, ...files.filter((f) => f.endsWith('.bin'))].slice(0, 3).join(', ')})`);
    }
    throw new LopperError('LP3003', `${path}: no config.json (not a Hugging Face model directory)`);
  }
  if (path.endsWith('.safetensors')) return 'hf';
  const fh = await open(path, 'r');
  const magic = new Uint8Array(4);
  try {
    await fh.read(magic, 0, 4, 0);
  } finally {
    await fh.close();
  }
  if (new TextDecoder().decode(magic) === 'GGUF') return 'gguf';
  if (path.endsWith('.bin')) return 'llama2c';
  throw new LopperError('LP3002', `${path}: not a Hugging Face directory, GGUF file or llama2.c .bin`);
}

/** The llama2.c tokenizer beside a checkpoint: tokenizer.bin or tok<vocab>.bin. */
async function llama2cTokenizerBeside(path: string, vocab: number): Promise<string | null> {
  for (const name of [`tok${vocab}.bin`, 'tokenizer.bin']) {
    const p = join(dirname(path), name);
    if (await exists(p)) return p;
  }
  return null;
}

/** Loads a model (config, float32 host weights in HF naming and layout, tokenizer or null). */
export async function loadModel(path: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const source = resolve(path);
  const format = opts.format ?? (await detectFormat(source));
  if (format === 'hf') {
    const dir = source.endsWith('.safetensors') ? dirname(source) : source;
    const config = await readHfConfigFile(dir);
    const weights = await readHfWeights(dir, config);
    let tokenizer: Tokenizer | null = null;
    if (opts.tokenizer) tokenizer = await loadTokenizer(resolve(opts.tokenizer));
    else if (await exists(join(dir, 'tokenizer.json'))) tokenizer = await loadTokenizer(dir);
    return { config, weights, tokenizer, format, source: dir };
  }
  if (format === 'llama2c') {
    const { config, weights } = await readLlama2c(source);
    const tokPath = opts.tokenizer ? resolve(opts.tokenizer) : await llama2cTokenizerBeside(source, config.vocabSize);
    let tokenizer: Tokenizer | null = null;
    if (tokPath) tokenizer = tokPath.endsWith('.bin') ? await loadLlama2cTokenizer(tokPath, config.vocabSize) : await loadTokenizer(tokPath);
    return { config, weights, tokenizer, format, source };
  }
  const { config, weights, tokenizer: embedded } = await readGguf(source);
  const tokenizer = opts.tokenizer ? await loadTokenizer(resolve(opts.tokenizer)) : embedded;
  return { config, weights, tokenizer, format, source };
}

/** The model's tokenizer, or LP3011 naming the model when it has none. */
export function requireTokenizer(model: Pick<LoadedModel, "tokenizer" | "source" | "format">): Tokenizer {
  if (!model.tokenizer) {
    throw new LopperError('LP3011', `${model.source}: the model has no tokenizer`,
      { hint: model.format === 'llama2c' ? 'Put tok<vocab>.bin or tokenizer.bin next to the .bin, or set `tokenizer:` in the model entry.' : 'Add tokenizer.json to the model directory, or set `tokenizer:` in the model entry.' });
  }
  return model.tokenizer;
}
