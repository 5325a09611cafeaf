// Shared by tests/lora and tests/train: a StageContext without the runner, the tfjs backend, and a structurally
// pruned stories260K (heterogeneous layers, made here by slicing so these tests do not depend on the prune stage).
import { existsSync, mkdtempSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backend/index.js';
import { loadModel, saveModel } from '../../src/model/index.js';
import type { HostTensor, LlamaConfig, WeightMap } from '../../src/model/types.js';
import type { DatasetSpec, StageContext, StageModule, StageResult } from '../../src/stages/types.js';

export const SHARED = path.resolve(import.meta.dirname, '../../../shared');
export const STORIES_HF = path.join(SHARED, 'models/stories260K-hf');
export const TINYSTORIES = path.join(SHARED, 'data/tinystories/tinystories_val_first.txt');
export const haveShared = existsSync(STORIES_HF) && existsSync(TINYSTORIES);

let backend: Promise<unknown> | undefined;
/** wasm: several times faster than tfjs-cpu for these sizes on this machine (and deterministic). */
export function useBackend(): Promise<unknown> {
  const kind = process.env.LOPPER_TEST_BACKEND === 'cpu' ? 'cpu' : 'wasm';
  backend ??= initBackend(kind).catch(() => initBackend('cpu'));
  return backend;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `lopper-${prefix}-`));
}

export interface Bench {
  root: string;
  models: Record<string, string>;
  datasets: Record<string, DatasetSpec>;
}

export interface RunOptions {
  signal?: AbortSignal;
  checkpointDir?: string;
  onTick?: (count: number) => void;
  outDir?: string;
  seed?: number;
}

/** Runs a stage like the runner would, with references resolved to `bench.models` / earlier outputs. */
export async function runStage(bench: Bench, stage: StageModule, id: string, params: Record<string, unknown>, opts: RunOptions = {}): Promise<{ outDir: string; result: StageResult | void }> {
  const outDir = opts.outDir ?? mkdtempSync(path.join(bench.root, `${id}-`));
  await mkdir(outDir, { recursive: true });
  let ticks = 0;
  const ctx: StageContext & { checkpointDir?: string } = {
    id, params: { kind: stage.kind, ...params }, seed: opts.seed ?? 42, recipeDir: bench.root, outDir,
    modelPath: (ref) => {
      const m = bench.models[ref];
      if (!m) throw new Error(`unknown model ${ref}`);
      return m;
    },
    model: (ref) => {
      const m = bench.models[ref];
      if (!m) throw new Error(`unknown model ${ref}`);
      return { path: m };
    },
    stageDir: () => { throw new Error('no stage dirs'); },
    dataset: (name) => {
      const d = bench.datasets[name];
      if (!d) throw new Error(`unknown dataset ${name}`);
      return d;
    },
    progress: { start() {}, tick() { ticks++; opts.onTick?.(ticks); }, note() {} },
    signal: opts.signal ?? new AbortController().signal,
    log() {},
    ...(opts.checkpointDir ? { checkpointDir: opts.checkpointDir } : {}),
  };
  const result = await stage.run(ctx);
  await result?.pending; // the model's files, still being written when run returns
  return { outDir, result };
}

function rows(t: HostTensor, keep: number[], rowLen: number): HostTensor {
  const data = new Float32Array(keep.length * rowLen);
  keep.forEach((r, i) => data.set(t.data.subarray(r * rowLen, (r + 1) * rowLen), i * rowLen));
  return { shape: [keep.length, rowLen], data };
}

function cols(t: HostTensor, keep: number[]): HostTensor {
  const [n, m] = t.shape as [number, number];
  const data = new Float32Array(n * keep.length);
  for (let r = 0; r < n; r++) keep.forEach((c, i) => { data[r * keep.length + i] = t.data[r * m + c]!; });
  return { shape: [n, keep.length], data };
}

/** stories260K with KV group 3 (query heads 6, 7) removed in every layer and the MLP cut to 128 channels in even
 * layers, 100 in odd ones (kept channels: the first ones). Written as an HF directory with the tokenizer. */
export async function writePrunedStories(dir: string): Promise<string> {
  const base = await loadModel(STORIES_HF);
  const c = base.config;
  const D = c.headDim;
  const H = c.hiddenSize;
  const weights: WeightMap = new Map(base.weights);
  const layers = c.layers.map((_, i) => ({ numAttentionHeads: 6, numKeyValueHeads: 3, intermediateSize: i % 2 === 0 ? 128 : 100 }));
  layers.forEach((l, i) => {
    const p = `model.layers.${i}`;
    const headRows = (heads: number) => Array.from({ length: heads * D }, (_, k) => k);
    weights.set(`${p}.self_attn.q_proj.weight`, rows(base.weights.get(`${p}.self_attn.q_proj.weight`)!, headRows(6), H));
    weights.set(`${p}.self_attn.k_proj.weight`, rows(base.weights.get(`${p}.self_attn.k_proj.weight`)!, headRows(3), H));
    weights.set(`${p}.self_attn.v_proj.weight`, rows(base.weights.get(`${p}.self_attn.v_proj.weight`)!, headRows(3), H));
    weights.set(`${p}.self_attn.o_proj.weight`, cols(base.weights.get(`${p}.self_attn.o_proj.weight`)!, headRows(6)));
    const keep = Array.from({ length: l.intermediateSize }, (_, k) => k);
    weights.set(`${p}.mlp.gate_proj.weight`, rows(base.weights.get(`${p}.mlp.gate_proj.weight`)!, keep, H));
    weights.set(`${p}.mlp.up_proj.weight`, rows(base.weights.get(`${p}.mlp.up_proj.weight`)!, keep, H));
    weights.set(`${p}.mlp.down_proj.weight`, cols(base.weights.get(`${p}.mlp.down_proj.weight`)!, keep));
  });
  const config: LlamaConfig = { ...c, layers };
  await saveModel(dir, { config, weights, tokenizer: base.tokenizer });
  return dir;
}

/** Max |a − b| over two tensors' values. */
export async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const [x, y] = [await a.data(), await b.data()];
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}
