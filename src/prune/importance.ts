// Per-weight salience and per-channel scores of one member (LLM-Pruner's MagnitudeImportance / TaylorImportance,
// reference §2.1–2.2). W = weight, g = gradient of the mean token CE over the whole calibration batch,
// F = (1/N) Σ_j g_j² (per-sample squared gradients, one backward per sample). A channel's score sums the salience
// over the channel's weights in that member: a row for axis 0, a column for axis 1, the whole tensor for axis null.
// Sums are taken in float64.
import type { HostTensor } from '../model/types.js';

export type ImportanceKind = 'random' | 'l1' | 'l2' | 'taylor';
export type TaylorVariant = 'vectorize' | 'param_first' | 'param_second' | 'param_mix';
/** The score a member's channels get: an importance kind, and for taylor its variant. */
export type Criterion = 'l1' | 'l2' | TaylorVariant;

export interface SalienceInputs {
  w: Float32Array;
  g?: Float32Array;
  f?: Float32Array;
}

interface CriterionDef {
  needsGradient: boolean;
  needsFisher: boolean;
  /** Per-weight salience s_k. */
  salience(w: number, g: number, f: number): number;
  /** true: channel score = |Σ s_k| (vectorize); false: Σ s_k with s_k already >= 0. */
  absOfSum: boolean;
}

/** Named criteria (LLM-Pruner hf_llama_pruner.py). Note the asymmetry: vectorize sums W·g first and takes the
 *  absolute value of the sum; every param_* variant takes |S| per weight first and then sums (Σ|S|). */
export const criteria: Readonly<Record<Criterion, CriterionDef>> = {
  l1: { needsGradient: false, needsFisher: false, absOfSum: false, salience: (w) => Math.abs(w) },
  // l2 is squared, no sqrt (MagnitudeImportance(p=2) sums w²).
  l2: { needsGradient: false, needsFisher: false, absOfSum: false, salience: (w) => w * w },
  vectorize: { needsGradient: true, needsFisher: false, absOfSum: true, salience: (w, g) => w * g },
  param_first: { needsGradient: true, needsFisher: false, absOfSum: false, salience: (w, g) => Math.abs(w * g) },
  // param_second: S = W·F·W, no ½ and no first-order term.
  param_second: { needsGradient: false, needsFisher: true, absOfSum: false, salience: (w, _g, f) => Math.abs(w * w * f) },
  // param_mix: S = W·g − ½·W·F·W (sign as fixed in LLM-Pruner commit 663d966), then |S|.
  param_mix: { needsGradient: true, needsFisher: true, absOfSum: false, salience: (w, g, f) => Math.abs(w * g - 0.5 * w * w * f) },
};

export function criterionOf(kind: Exclude<ImportanceKind, 'random'>, taylor: TaylorVariant): Criterion {
  return kind === 'taylor' ? taylor : kind;
}

/** [rows, cols] view of a parameter: a 1-D tensor of n elements is n rows of one weight. */
function matrixShape(t: HostTensor): [number, number] {
  if (t.shape.length === 1) return [t.shape[0]!, 1];
  if (t.shape.length === 2) return [t.shape[0]!, t.shape[1]!];
  throw new Error(`expected a 1-D or 2-D parameter, got shape ${JSON.stringify(t.shape)}`);
}

/**
 * Channel scores of one member: length rows (axis 0), cols (axis 1) or 1 (axis null).
 * `g` / `f` must have the weight's shape when the criterion needs them.
 */
export function channelScores(criterion: Criterion, weight: HostTensor, axis: 0 | 1 | null, g?: Float32Array, f?: Float32Array): Float64Array {
  const def = criteria[criterion];
  if (def.needsGradient && !g) throw new Error(`criterion ${criterion} needs the gradient`);
  if (def.needsFisher && !f) throw new Error(`criterion ${criterion} needs the squared-gradient mean`);
  const [rows, cols] = matrixShape(weight);
  const w = weight.data;
  const n = axis === 0 ? rows : axis === 1 ? cols : 1;
  const sums = new Float64Array(n);
  const gv = g ?? w; // placeholders are never read by criteria that do not need them
  const fv = f ?? w;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    if (axis === 0) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += def.salience(w[base + c]!, gv[base + c]!, fv[base + c]!);
      sums[r] = s;
    } else if (axis === 1) {
      for (let c = 0; c < cols; c++) sums[c] = sums[c]! + def.salience(w[base + c]!, gv[base + c]!, fv[base + c]!);
    } else {
      let s = 0;
      for (let c = 0; c < cols; c++) s += def.salience(w[base + c]!, gv[base + c]!, fv[base + c]!);
      sums[0] = sums[0]! + s;
    }
  }
  if (def.absOfSum) for (let i = 0; i < n; i++) sums[i] = Math.abs(sums[i]!);
  return sums;
}

/** LLM-Pruner's `random` importance: one uniform [0, 1) value per channel of the root member. */
export function randomChannelScores(channels: number, random: () => number): Float64Array {
  const out = new Float64Array(channels);
  for (let i = 0; i < channels; i++) out[i] = random();
  return out;
}
