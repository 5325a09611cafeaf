// Which units survive (Torch-Pruning's pruner decision, LLM-Pruner `prune_local` / `prune_global`, reference §3.3).
// Local: each group keeps its floor(units × (1 − ratio)) highest-scored units. Global: every unit of every group is
// ranked together and floor(total × (1 − ratio)) are kept — scores of different groups are then compared directly,
// so normalization (aggregate `normalize`) matters. Ties keep the lower index. Kept indices are ascending.
// Adaptive (FLAP's AL-AM, lib/prune.py prune_flap): every unit of every group ranked together, each weighing its
// parameter count (FLAP's `compression_weight`: 512/3 per head against 1 per MLP channel, which is a LLaMA-7B head's
// 4·128·H weights over a channel's 3·H); with C_j the cumulative weight of the j+1 best units and T = total·(1 −
// ratio), the unit j* = argmin_j |C_j − T| is FLAP's threshold and the j* units above it are kept (`metric >
// threshold`) — so even ratio 0 drops the last unit, as FLAP does.
import { LopperError } from '../errors/lopper-error.js';
import type { PruningGroup } from './groups.js';
import { keptCount, roundedKept, roundsTo } from './shapes.js';

export type Scope = 'local' | 'global' | 'adaptive';

export interface ScoredGroup {
  group: PruningGroup;
  scores: Float64Array;
}

/** Indices of the `k` highest scores (ties: lower index first), ascending. */
export function topUnits(scores: ArrayLike<number>, k: number): number[] {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  order.sort((a, b) => (scores[b]! - scores[a]!) || (a - b));
  return order.slice(0, k).sort((a, b) => a - b);
}

function withRounding(g: ScoredGroup, kept: number[], roundTo: number | undefined): number[] {
  if (!roundsTo(g.group)) return kept;
  const target = roundedKept(kept.length, g.group.units, roundTo);
  return target === kept.length ? kept : topUnits(g.scores, target);
}

/** Units kept of `all` (sorted best first) by FLAP's AL-AM threshold; `cost` = parameters of one unit of group g. */
function adaptiveKeptCount(all: Array<{ g: number }>, cost: (g: number) => number, ratio: number): number {
  let total = 0;
  for (const e of all) total += cost(e.g);
  const target = total * (1 - ratio);
  let best = 0, bestGap = Infinity, cum = 0;
  all.forEach((e, j) => {
    cum += cost(e.g);
    const gap = Math.abs(cum - target);
    if (gap < bestGap) { bestGap = gap; best = j; } // torch.argmin: the first minimum
  });
  return best;
}

/**
 * Kept unit indices per group id. Does not validate (see `checkLegal`). `unitCost` (adaptive scope): the
 * parameters one unit of a group removes.
 */
export function keptUnits(groups: ScoredGroup[], ratio: number, scope: Scope, roundTo?: number, unitCost?: (g: PruningGroup) => number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  if (scope === 'local') {
    for (const g of groups) out.set(g.group.id, withRounding(g, topUnits(g.scores, keptCount(g.group.units, ratio)), roundTo));
    return out;
  }
  const all: Array<{ g: number; u: number; s: number }> = [];
  groups.forEach((g, gi) => g.scores.forEach((s, u) => all.push({ g: gi, u, s })));
  all.sort((a, b) => (b.s - a.s) || (a.g - b.g) || (a.u - b.u));
  let n: number;
  if (scope === 'adaptive') {
    if (!unitCost) throw new Error('internal: adaptive selection needs unit costs');
    const costs = groups.map((g) => unitCost(g.group));
    n = adaptiveKeptCount(all, (g) => costs[g]!, ratio);
  } else {
    n = keptCount(all.length, ratio);
  }
  const kept: number[][] = groups.map(() => []);
  for (const e of all.slice(0, n)) kept[e.g]!.push(e.u);
  groups.forEach((g, gi) => {
    const k = kept[gi]!.sort((a, b) => a - b);
    // round_to on a global selection: top up to the rounded count with the group's best remaining units.
    const target = roundsTo(g.group) ? roundedKept(k.length, g.group.units, roundTo) : k.length;
    out.set(g.group.id, target > k.length ? withBest(g.scores, k, target) : k);
  });
  return out;
}

function withBest(scores: Float64Array, kept: number[], target: number): number[] {
  const set = new Set(kept);
  const rest = Array.from({ length: scores.length }, (_, i) => i).filter((u) => !set.has(u));
  rest.sort((a, b) => (scores[b]! - scores[a]!) || (a - b));
  return [...kept, ...rest.slice(0, target - kept.length)].sort((a, b) => a - b);
}

/** A legal model keeps at least one unit of every group (one KV group per layer, one channel, one layer). */
export function checkLegal(groups: PruningGroup[], kept: Map<string, number[]>): void {
  for (const g of groups) {
    if ((kept.get(g.id)?.length ?? 0) === 0) {
      const what = g.kind === 'attention' ? 'every attention head' : g.kind === 'mlp' ? 'every MLP channel'
        : g.kind === 'hidden' ? 'every hidden channel' : 'every decoder layer';
      throw new LopperError('LP4004', `pruning would remove ${what} of ${g.id} (${g.units} ${g.unit} units)`, {
        hint: 'Lower the ratio (or raise target_params); with scope: global, normalize scores (aggregate normalize: mean|max|sum|gaussian) so groups compete on one scale.',
      });
    }
  }
}
