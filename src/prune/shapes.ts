// Shape arithmetic of pruning, without weights: how many units a ratio keeps, the config a set of kept units
// produces, its parameter count, and the ratio that reaches a parameter budget. `lopper inspect` and the prune
// stage both use these, so a config.json alone predicts what pruning the model will produce.
import { parameterShapes } from '../model/config.js';
import type { LlamaConfig, LayerShape } from '../model/types.js';
import type { PruningGroup } from './groups.js';

/** Parameters of decoder layer i (weights, norms, and biases where the config has them). */
export function layerParameterCount(config: LlamaConfig, i: number): number {
  const prefix = `model.layers.${i}.`;
  let n = 0;
  for (const [name, shape] of parameterShapes(config)) if (name.startsWith(prefix)) n += shape.reduce((a, d) => a * d, 1);
  return n;
}

/**
 * Units a group keeps at `ratio`: floor(units × (1 − ratio)), the count LLM-Pruner's prune_local keeps for LLaMA-7B
 * (int(n·(1−ratio))). A 1e-9 slack keeps such products from losing a unit to
 * float rounding (10 × (1 − 0.9) = 0.9999999999999998).
 */
export function keptCount(units: number, ratio: number): number {
  return Math.max(0, Math.min(units, Math.floor(units * (1 - ratio) + 1e-9)));
}

/** `round_to`: a kept channel count rounded up to a multiple (pruning less, as Torch-Pruning does), capped at `units`. */
export function roundedKept(kept: number, units: number, roundTo: number | undefined): number {
  if (!roundTo || roundTo <= 1 || kept === 0) return kept;
  return Math.min(units, Math.ceil(kept / roundTo) * roundTo);
}

/** Whether round_to applies to a group (channel counts: MLP and hidden channels, not heads or layers). */
export function roundsTo(group: PruningGroup): boolean {
  return group.kind === 'mlp' || group.kind === 'hidden';
}

/**
 * Weights one unit of a block-mode group holds (what removing it saves; the adaptive scope's weight): a KV group's
 * q and o_proj slices of its n_rep heads plus its k and v rows, (2·n_rep + 2)·head_dim·hidden; an MLP channel's
 * gate/up rows and down column, 3·hidden. Biases are not counted (FLAP's compression_weight counts weights only).
 */
export function unitWeightCount(config: LlamaConfig, group: PruningGroup): number {
  const H = config.hiddenSize;
  if (group.kind === 'mlp') return 3 * H;
  if (group.kind === 'attention') {
    const l = config.layers[group.layer!]!;
    return (2 * (l.numAttentionHeads / l.numKeyValueHeads) + 2) * config.headDim * H;
  }
  throw new Error(`internal: no unit weight count for a ${group.kind} group`);
}

/** Kept units per group for local pruning (every group at the same ratio). */
export function localKeptCounts(groups: PruningGroup[], ratio: number, roundTo?: number): Map<string, number> {
  return new Map(groups.map((g) => [g.id, roundsTo(g) ? roundedKept(keptCount(g.units, ratio), g.units, roundTo) : keptCount(g.units, ratio)]));
}

/**
 * The config after keeping `kept` (ascending unit indices) of each group. Units not in any group stay.
 * Layer mode removes the decoder layers whose units are not kept.
 */
export function configAfter(config: LlamaConfig, groups: PruningGroup[], kept: Map<string, number[]>): LlamaConfig {
  let layers: LayerShape[] = config.layers.map((l) => ({ ...l }));
  let hiddenSize = config.hiddenSize;
  let numHiddenLayers = config.numHiddenLayers;
  for (const g of groups) {
    const k = kept.get(g.id);
    if (!k) continue;
    if (g.kind === 'attention') {
      const layer = layers[g.layer!]!;
      const nRep = layer.numAttentionHeads / layer.numKeyValueHeads;
      layer.numKeyValueHeads = k.length;
      layer.numAttentionHeads = k.length * nRep;
    } else if (g.kind === 'mlp') {
      layers[g.layer!]!.intermediateSize = k.length;
    } else if (g.kind === 'hidden') {
      hiddenSize = k.length;
    } else {
      const removed = new Set(g.layerIds!.filter((_, u) => !k.includes(u)));
      layers = layers.filter((_, i) => !removed.has(i));
      numHiddenLayers = layers.length;
    }
  }
  return { ...config, hiddenSize, numHiddenLayers, layers };
}

/** Shape-only: the config local pruning at `ratio` produces (which units are kept does not change shapes,
 *  except in layer mode on a model whose layers differ, where the first ones are assumed kept). */
export function configAtRatio(config: LlamaConfig, groups: PruningGroup[], ratio: number, roundTo?: number): LlamaConfig {
  const counts = localKeptCounts(groups, ratio, roundTo);
  const kept = new Map([...counts].map(([id, n]) => [id, Array.from({ length: n }, (_, i) => i)]));
  return configAfter(config, groups, kept);
}

/**
 * The smallest ratio in [0, 1) whose result has at most `target` parameters, by bisection on the monotone
 * (non-increasing, stepwise) function `paramsAt`. Returns null when even ratio → 1 does not reach the target.
 */
export function ratioForTarget(target: number, paramsAt: (ratio: number) => number): number | null {
  if (paramsAt(0) <= target) return 0;
  let lo = 0;
  let hi = 1 - 1e-12;
  if (paramsAt(hi) > target) return null;
  for (let i = 0; i < 80 && hi - lo > 1e-15; i++) {
    const mid = (lo + hi) / 2;
    if (paramsAt(mid) <= target) hi = mid;
    else lo = mid;
  }
  return hi;
}
