// Structured removal (LLM-Pruner §4): slice every member of every group to its kept units and produce the new
// config. Kept indices are ascending, so surviving heads and channels keep their relative order. Attention: kept
// KV group kv keeps k/v rows kv·d … kv·d+d−1, the q rows and o_proj columns of query heads kv·n_rep … kv·n_rep+n_rep−1
// (and the matching q/k/v biases). MLP: gate/up rows and down columns (gate/up biases). Hidden channels: every
// tensor's hidden side (embeddings and lm_head columns, norms, q/k/v/gate/up columns, o/down rows and biases).
// Layers: the removed decoder layers' tensors are dropped and the rest renumbered.
import type { HostTensor, LlamaConfig, WeightMap } from '../model/types.js';
import type { PruningGroup } from './groups.js';
import { configAfter } from './shapes.js';

export function selectRows(t: HostTensor, rows: number[]): HostTensor {
  const cols = t.shape.length === 1 ? 1 : t.shape[1]!;
  const out = new Float32Array(rows.length * cols);
  rows.forEach((r, i) => out.set(t.data.subarray(r * cols, r * cols + cols), i * cols));
  return { shape: t.shape.length === 1 ? [rows.length] : [rows.length, cols], data: out };
}

export function selectColumns(t: HostTensor, columns: number[]): HostTensor {
  const [rows, cols] = [t.shape[0]!, t.shape[1]!];
  const out = new Float32Array(rows * columns.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const o = r * columns.length;
    for (let j = 0; j < columns.length; j++) out[o + j] = t.data[base + columns[j]!]!;
  }
  return { shape: [rows, columns.length], data: out };
}

/** Channels c·size … c·size+size−1 for every c in `units`. */
export function expandUnits(units: number[], size: number): number[] {
  const out: number[] = [];
  for (const u of units) for (let j = 0; j < size; j++) out.push(u * size + j);
  return out;
}

/** How to keep rows or columns of one kind of tensor (host arrays here, device tensors in device-surgery.ts). */
export interface TensorSlicer<T> {
  rows(t: T, rows: number[]): T;
  columns(t: T, columns: number[]): T;
}

export const hostSlicer: TensorSlicer<HostTensor> = { rows: selectRows, columns: selectColumns };

export interface Pruned<T> {
  config: LlamaConfig;
  weights: Map<string, T>;
}

export type PrunedModel = Pruned<HostTensor>;

/** The pruned config and host weights; `weights` is not modified (untouched tensors are shared, not copied). */
export function pruneModel(config: LlamaConfig, weights: WeightMap, groups: PruningGroup[], kept: Map<string, number[]>): PrunedModel {
  return pruneWeights(config, weights, groups, kept, hostSlicer);
}

/** The pruned config and weights of any tensor kind; tensors that keep all their units are passed through. */
export function pruneWeights<T>(config: LlamaConfig, weights: Map<string, T>, groups: PruningGroup[], kept: Map<string, number[]>, slicer: TensorSlicer<T>): Pruned<T> {
  const sliceIfPresent = (_weights: Map<string, T>, out: Map<string, T>, name: string, fn: (t: T) => T): void => {
    const t = out.get(name);
    if (t !== undefined) out.set(name, fn(t));
  };
  const selectRows = (t: T, rows: number[]) => slicer.rows(t, rows);
  const selectColumns = (t: T, columns: number[]) => slicer.columns(t, columns);
  const out = new Map<string, T>(weights);
  const d = config.headDim;
  let layerMap: Map<number, number> | null = null;
  for (const g of groups) {
    const k = kept.get(g.id);
    if (!k) continue;
    if (g.kind === 'attention') {
      const p = `model.layers.${g.layer}.self_attn`;
      const { numAttentionHeads: H, numKeyValueHeads: KV } = config.layers[g.layer!]!;
      const nRep = H / KV;
      const kvRows = expandUnits(k, d);
      const qRows = expandUnits(expandUnits(k, nRep), d);
      for (const m of ['q_proj', 'k_proj', 'v_proj']) {
        const rows = m === 'q_proj' ? qRows : kvRows;
        sliceIfPresent(weights, out, `${p}.${m}.weight`, (t) => selectRows(t, rows));
        sliceIfPresent(weights, out, `${p}.${m}.bias`, (t) => selectRows(t, rows));
      }
      sliceIfPresent(weights, out, `${p}.o_proj.weight`, (t) => selectColumns(t, qRows));
    } else if (g.kind === 'mlp') {
      const p = `model.layers.${g.layer}.mlp`;
      for (const m of ['gate_proj', 'up_proj']) {
        sliceIfPresent(weights, out, `${p}.${m}.weight`, (t) => selectRows(t, k));
        sliceIfPresent(weights, out, `${p}.${m}.bias`, (t) => selectRows(t, k));
      }
      sliceIfPresent(weights, out, `${p}.down_proj.weight`, (t) => selectColumns(t, k));
    } else if (g.kind === 'hidden') {
      const cols = (name: string) => sliceIfPresent(weights, out, name, (t) => selectColumns(t, k));
      const rows = (name: string) => sliceIfPresent(weights, out, name, (t) => selectRows(t, k));
      cols('model.embed_tokens.weight');
      cols('lm_head.weight');
      rows('model.norm.weight');
      for (let i = 0; i < config.numHiddenLayers; i++) {
        const p = `model.layers.${i}`;
        rows(`${p}.input_layernorm.weight`);
        rows(`${p}.post_attention_layernorm.weight`);
        for (const m of ['q_proj', 'k_proj', 'v_proj']) cols(`${p}.self_attn.${m}.weight`);
        for (const m of ['gate_proj', 'up_proj']) cols(`${p}.mlp.${m}.weight`);
        rows(`${p}.self_attn.o_proj.weight`);
        rows(`${p}.self_attn.o_proj.bias`);
        rows(`${p}.mlp.down_proj.weight`);
        rows(`${p}.mlp.down_proj.bias`);
      }
    } else {
      const removed = new Set(g.layerIds!.filter((_, u) => !k.includes(u)));
      layerMap = new Map();
      let next = 0;
      for (let i = 0; i < config.numHiddenLayers; i++) if (!removed.has(i)) layerMap.set(i, next++);
    }
  }
  if (layerMap) {
    const renamed = new Map<string, T>();
    for (const [name, t] of out) {
      const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
      if (!m) { renamed.set(name, t); continue; }
      const to = layerMap.get(Number(m[1]));
      if (to !== undefined) renamed.set(`model.layers.${to}.${m[2]}`, t);
    }
    return { config: configAfter(config, groups, kept), weights: renamed };
  }
  return { config: configAfter(config, groups, kept), weights: out };
}
