// exportModel(recipe, target, options): a model-producing stage's stored output (run first when it is not cached, as
// `run --only` would) or a `models:` entry, written as GGUF for llama.cpp or as a Hugging Face directory in a dtype.
// The file appears under its final name only once written whole (temp name, then rename).
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import { detectFormat, loadModel } from '../model/index.js';
import { modelDirOf, readHfConfigFile, saveModel, streamHfWeights } from '../model/hf.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { rawToFloat32 } from '../model/raw-tensor.js';
import { ggufArchitecture, writeGguf, type GgufDtype, type WeightStream } from '../model/gguf-write.js';
import type { LlamaConfig, Tokenizer } from '../model/types.js';
import type { HfDtype } from '../model/dtype.js';
import { resolvePlan, run, type RunCallOptions } from './run.js';

export type ExportFormat = 'gguf' | 'hf';
export const EXPORT_DTYPES = ['f32', 'f16', 'bf16', 'q8_0'] as const;
export type ExportDtype = (typeof EXPORT_DTYPES)[number];

export interface ExportOptions extends Pick<RunCallOptions, 'set' | 'store' | 'backend'> {
  format: ExportFormat;
  dtype?: ExportDtype;
  out: string;
  /** Progress lines (what is being run, read, written). */
  log?: (line: string) => void;
}

export interface ExportResult { path: string; format: ExportFormat; dtype: ExportDtype; source: string; architecture?: string }

const HF_DTYPE: Record<ExportDtype, HfDtype | null> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16', q8_0: null };

/** The model directory or file a target names: a `models:` entry's path, or a model stage's output (run if needed). */
async function modelSource(recipe: string, target: string, opts: ExportOptions): Promise<string> {
  const plan = await resolvePlan(recipe, opts);
  const stage = plan.stages.find((s) => s.id === target);
  if (stage) {
    if (stage.outputKind !== 'model') {
      throw new LopperError('LP7010', `stage "${target}" is a ${stage.kind} stage and writes ${stage.outputKind}, not a model`, {
        hint: `export a prune, lora-finetune or train stage, or a models: entry (stages here: ${plan.stages.filter((s) => s.outputKind === 'model').map((s) => s.id).join(', ') || 'none'})`,
      });
    }
    opts.log?.(`running ${target} if it is not stored yet`);
    const result = await run(plan, { only: [target], set: opts.set, store: opts.store, record: false, lockfile: false });
    return join(result.stages[target]!.output, 'model');
  }
  for (const s of plan.stages) {
    const path = s.models[target];
    if (path) return path;
  }
  throw new LopperError('LP7010', `"${target}" names no stage and no models: entry read by a stage of ${recipe}`, {
    hint: `model stages: ${plan.stages.filter((s) => s.outputKind === 'model').map((s) => s.id).join(', ') || 'none'}`,
  });
}

async function streamedHf(dir: string): Promise<{ config: LlamaConfig; weights: WeightStream; tokenizer: Tokenizer | null }> {
  const config = await readHfConfigFile(dir);
  const tokenizer = await loadTokenizer(dir).catch((e: unknown) => {
    if (e instanceof LopperError && e.code === 'LP3011') return null;
    throw e;
  });
  const weights: WeightStream = async (visit) => {
    await streamHfWeights(dir, config, (name, raw) => visit(name, rawToFloat32(raw, `${dir}: tensor "${name}"`)));
  };
  return { config, weights, tokenizer };
}

export async function exportModel(recipe: string, target: string, opts: ExportOptions): Promise<ExportResult> {
  const dtype = opts.dtype ?? 'f32';
  if (!EXPORT_DTYPES.includes(dtype)) {
    throw new LopperError('LP7010', `unknown export dtype ${JSON.stringify(dtype)}`, { hint: `one of ${EXPORT_DTYPES.join(', ')}` });
  }
  if (opts.format === 'hf' && HF_DTYPE[dtype] === null) {
    throw new LopperError('LP7010', `--dtype ${dtype} is a GGUF block format; a Hugging Face directory is f32, f16 or bf16`);
  }
  const source = await modelSource(resolve(recipe), target, opts);
  opts.log?.(`reading ${source}`);
  // A Hugging Face checkpoint goes to GGUF a tensor at a time (a 7B model is 28 GB as host float32); other sources
  // (llama2.c, GGUF) are small in practice and read whole.
  const loaded = opts.format === 'gguf' && (await detectFormat(source)) === 'hf' ? await streamedHf(modelDirOf(source)) : await loadModel(source);
  const out = resolve(opts.out);
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.tmp`);
  try {
    await mkdir(dirname(out), { recursive: true });
  } catch (e) {
    throw new LopperError('LP3016', `${dirname(out)}: cannot create the output directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    if (opts.format === 'gguf') {
      if (!loaded.tokenizer) throw new LopperError('LP3011', `${source} has no tokenizer; a GGUF file carries one for llama.cpp`);
      if (loaded.config.attentionBias || loaded.config.mlpBias) {
        throw new LopperError('LP3018', `${source}: ${target} has projection biases (attention_bias / mlp_bias, e.g. FLAP's bias compensation), which lopper does not write to GGUF yet; nothing was written to ${out}`, {
          hint: 'Export --format hf (transformers reads the biases), or prune with bias_compensation: false.',
        });
      }
      opts.log?.(`writing ${out} (GGUF ${dtype}, ${ggufArchitecture(loaded.config)} architecture)`);
      await writeGguf(tmp, { config: loaded.config, weights: loaded.weights, tokenizer: loaded.tokenizer, name: target }, dtype as GgufDtype);
    } else {
      opts.log?.(`writing ${out} (Hugging Face, ${HF_DTYPE[dtype]})`);
      await saveModel(tmp, loaded as Awaited<ReturnType<typeof loadModel>>, { dtype: HF_DTYPE[dtype]! });
    }
    await rm(out, { recursive: true, force: true });
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const result: ExportResult = { path: out, format: opts.format, dtype, source };
  if (opts.format === 'gguf') result.architecture = ggufArchitecture(loaded.config);
  return result;
}
