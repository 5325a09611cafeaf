// FLAP's bias compensation (lib/prune.py compress, `bias=True`): a removed head's or MLP channel's output is
// replaced by its mean over the calibration tokens, so the removed input channels c of o_proj / down_proj add
//     b[r] = Σ_{c removed} W[r, c] · μ_c          (`(mean_inp * ~mask) @ W.T`, W the unpruned weight)
// as a bias of that projection. lopper adds it to the projection's existing bias, if any (FLAP overwrites a bias it
// created itself). The pruned model then needs biases in Hugging Face terms: transformers' LlamaAttention puts a
// bias on q/k/v/o when `attention_bias` is true and LlamaMLP on gate/up/down when `mlp_bias` is true, so those
// flags are set and the projections FLAP leaves without a bias get zero biases. Qwen2 (biases on q/k/v only, none
// on o_proj) and Mistral (no bias flags in transformers) cannot carry them: refused.
import * as tf from '@tensorflow/tfjs-core';
import { LopperError } from '../errors/lopper-error.js';
import { parameterShapes } from '../model/config.js';
import type { LlamaConfig } from '../model/types.js';
import type { PruningGroup } from './groups.js';
import { expandUnits, type Pruned } from './surgery.js';

/** Mean input per compensated group id (the measured projection's input channels, unpruned numbering). */
export type MeanInputs = ReadonlyMap<string, Float32Array>;

/** The groups that get a compensation bias: those with mean inputs that lose at least one unit. */
export function compensatedGroups(groups: PruningGroup[], kept: Map<string, number[]>, means: MeanInputs): PruningGroup[] {
  return groups.filter((g) => means.has(g.id) && (kept.get(g.id)?.length ?? g.units) < g.units);
}

/** The config of a pruned model whose compensated groups carry biases: attention_bias / mlp_bias set where needed. */
export function compensatedConfig(config: LlamaConfig, groups: PruningGroup[], kept: Map<string, number[]>, means: MeanInputs): LlamaConfig {
  const kinds = new Set(compensatedGroups(groups, kept, means).map((g) => g.kind));
  if (kinds.size === 0) return config;
  const type = config.extra?.model_type ?? 'llama';
  if (type !== 'llama') {
    throw new LopperError('LP4014', `bias compensation adds o_proj / down_proj biases, which a ${String(type)} model cannot carry in transformers (LlamaAttention's attention_bias and LlamaMLP's mlp_bias are LLaMA's)`, {
      hint: 'Set bias_compensation: false on the prune stage.',
    });
  }
  return { ...config, attentionBias: config.attentionBias || kinds.has('attention'), mlpBias: config.mlpBias || kinds.has('mlp') };
}

/** Removed input channels of the measured projection for the kept units of a group. */
function removedChannels(config: LlamaConfig, g: PruningGroup, kept: number[]): number[] {
  const all = g.kind === 'attention'
    ? expandUnits(expandUnits(kept, config.layers[g.layer!]!.numAttentionHeads / config.layers[g.layer!]!.numKeyValueHeads), config.headDim)
    : kept;
  const keep = new Set(all);
  const width = g.kind === 'attention' ? config.layers[g.layer!]!.numAttentionHeads * config.headDim : config.layers[g.layer!]!.intermediateSize;
  return Array.from({ length: width }, (_, c) => c).filter((c) => !keep.has(c));
}

/**
 * Adds FLAP's compensation biases (and the zero biases the new flags imply) to a pruned model's device tensors.
 * `base` holds the unpruned tensors (the removed columns are read from there); tensors this makes are pushed to
 * `made` for the caller to dispose once the model has taken them.
 */
export function addCompensationBiases(base: LlamaConfig, baseTensors: ReadonlyMap<string, tf.Tensor[]>, pruned: Pruned<tf.Tensor[]>,
  groups: PruningGroup[], kept: Map<string, number[]>, means: MeanInputs, made: tf.Tensor[]): Pruned<tf.Tensor[]> {
  const config = compensatedConfig(pruned.config, groups, kept, means);
  const weights = new Map(pruned.weights);
  const keep = (t: tf.Tensor): tf.Tensor => { made.push(t); return t; };
  for (const [name, shape] of parameterShapes(config)) if (!weights.has(name)) weights.set(name, [keep(tf.zeros(shape))]);
  for (const g of compensatedGroups(groups, kept, means)) {
    const mean = means.get(g.id)!;
    const proj = g.kind === 'attention' ? `model.layers.${g.layer}.self_attn.o_proj` : `model.layers.${g.layer}.mlp.down_proj`;
    const removed = removedChannels(base, g, kept.get(g.id)!);
    const masked = new Float32Array(mean.length);
    for (const c of removed) masked[c] = mean[c]!;
    const [w] = baseTensors.get(`${proj}.weight`)!;
    const [b] = weights.get(`${proj}.bias`)!;
    weights.set(`${proj}.bias`, [keep(tf.tidy(() => tf.add(b!, tf.reshape(tf.matMul(w as tf.Tensor2D, tf.tensor2d(masked, [mean.length, 1])), [-1]))))]);
  }
  return { config, weights };
}
