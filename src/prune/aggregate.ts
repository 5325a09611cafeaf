// From per-member channel scores to one score per prunable unit (LLM-Pruner `_reduce` + `prune_local`'s head sum,
// reference §3.1–3.3), in LLM-Pruner's order:
//   1. align every member onto the group's aligned channel space (GQA: q/o channels of query head h are summed onto
//      KV head h // n_rep — the explicit map, see groups.ts — where LLM-Pruner folds them by c mod kv_channels);
//   2. reduce across members per aligned channel (sum | mean | max | prod | first | last);
//   3. pool aligned channels into units by summing (a head's score = Σ over its head_dim channels);
//   4. optionally normalize the unit scores of the group.
// For `sum` steps 2 and 3 commute; for the other reductions this order is the one LLM-Pruner uses.
// Pooling `mean` (FLAP, whose standardized channel scores are averaged per head: lib/prune.py prune_flap,
// `reshape(L, -1, 128).mean(dim=2)`) averages instead of summing in steps 1 and 3, so a unit's score is the mean
// over the member channels it holds (a KV group under GQA: over all its query heads' channels).
import { alignedChannel, type PruningGroup } from './groups.js';

export type Reduce = 'sum' | 'mean' | 'max' | 'prod' | 'first' | 'last';
export type Normalize = 'none' | 'mean' | 'max' | 'sum' | 'gaussian';
export type Pool = 'sum' | 'mean';

/** Member reductions by name; `first` is the root member, `last` the last-executing one (o_proj / down_proj). */
export const reductions: Readonly<Record<Reduce, (values: number[]) => number>> = {
  sum: (v) => v.reduce((a, b) => a + b, 0),
  mean: (v) => v.reduce((a, b) => a + b, 0) / v.length,
  max: (v) => v.reduce((a, b) => Math.max(a, b), -Infinity),
  prod: (v) => v.reduce((a, b) => a * b, 1),
  first: (v) => v[0]!,
  last: (v) => v[v.length - 1]!,
};

/** Normalizers by name, as Torch-Pruning defines them (gaussian uses the unbiased std, + 1e-8). */
export const normalizers: Readonly<Record<Normalize, (s: Float64Array) => Float64Array>> = {
  none: (s) => s,
  mean: (s) => scale(s, 1 / (sumOf(s) / s.length)),
  max: (s) => scale(s, 1 / s.reduce((a, b) => Math.max(a, b), -Infinity)),
  sum: (s) => scale(s, 1 / sumOf(s)),
  gaussian: (s) => {
    const mean = sumOf(s) / s.length;
    let sq = 0;
    for (const x of s) sq += (x - mean) ** 2;
    const std = s.length > 1 ? Math.sqrt(sq / (s.length - 1)) : 0;
    return s.map((x) => (x - mean) / (std + 1e-8));
  },
};

function sumOf(s: Float64Array): number {
  let t = 0;
  for (const x of s) t += x;
  return t;
}

function scale(s: Float64Array, k: number): Float64Array {
  return s.map((x) => x * k);
}

/** Step 1: a member's channel scores summed (pool mean: averaged) onto the aligned channel space (length units * unitSize). */
export function alignScores(scores: Float64Array, group: PruningGroup, repeat: number, pool: Pool = 'sum'): Float64Array {
  const out = new Float64Array(group.units * group.unitSize);
  for (let c = 0; c < scores.length; c++) {
    const a = alignedChannel(c, group.unitSize, repeat);
    out[a] = out[a]! + scores[c]!;
  }
  // Each aligned channel receives exactly `repeat` member channels.
  return pool === 'mean' && repeat > 1 ? out.map((x) => x / repeat) : out;
}

/**
 * One score per unit of `group`. `memberScores` is in member order and may omit members (null) that were not
 * scored — `random` scores only the root — in which case `first`/`last` mean the first/last scored member.
 */
export function unitImportance(group: PruningGroup, memberScores: Array<Float64Array | null>, reduce: Reduce, normalize: Normalize, pool: Pool = 'sum'): Float64Array {
  const aligned: Float64Array[] = [];
  group.members.forEach((m, i) => {
    const s = memberScores[i];
    if (!s) return;
    if (s.length !== m.channels) throw new Error(`${group.id}/${m.role}: ${s.length} channel scores, expected ${m.channels}`);
    aligned.push(alignScores(s, group, m.repeat, pool));
  });
  if (aligned.length === 0) throw new Error(`${group.id}: no member scores`);
  const fn = reductions[reduce];
  const perChannel = new Float64Array(group.units * group.unitSize);
  const column: number[] = new Array(aligned.length);
  for (let a = 0; a < perChannel.length; a++) {
    for (let k = 0; k < aligned.length; k++) column[k] = aligned[k]![a]!;
    perChannel[a] = fn(column);
  }
  const units = new Float64Array(group.units);
  for (let a = 0; a < perChannel.length; a++) {
    const u = Math.floor(a / group.unitSize);
    units[u] = units[u]! + perChannel[a]!;
  }
  if (pool === 'mean') for (let u = 0; u < units.length; u++) units[u] = units[u]! / group.unitSize;
  return normalizers[normalize](units);
}
