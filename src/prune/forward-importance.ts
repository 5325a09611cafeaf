// Channel scores of the gradient-free importance kinds, from forward statistics (forward-stats.ts) and the weight
// of the measured projection (o_proj / down_proj, whose input channels are the heads' / MLP channels' outputs).
// Pure float64 functions of [C] vectors; the column reductions of W [out, C] come from wherever W lives.
//   wanda (Wanda-sp as FLAP runs it, lib/prune.py prune_wanda_sp): |W|·√scaler_row averaged over W's rows
//     (`W_metric.mean(axis=0)`) → one score per input channel; a head sums its head_dim channels (aggregate).
//   flap (FLAP lib/prune.py `metrics`): IFV = fluc_inp; WIFV = fluc_inp · Σ_rows W²; WIFN = mean_rows |W|·√scaler_inp.
//     prune_flap squares the attention metric (`** 2`, o_proj only), then standardizes each layer's vector
//     across its channels (`standarlization`: (x − mean) / std, torch.std unbiased, no epsilon); a head's score is
//     the mean of its channels' standardized scores (aggregate pools flap by mean).
import { LopperError } from '../errors/lopper-error.js';
import type { LinearInputStats } from './forward-stats.js';

export type FlapMetric = 'WIFV' | 'IFV' | 'WIFN';
export const FLAP_METRICS: readonly FlapMetric[] = ['WIFV', 'IFV', 'WIFN'];

/** Column reductions of a weight [out, C]: mean_r |W_rc| and Σ_r W_rc². */
export interface ColumnStats { absMean: Float64Array; sqSum: Float64Array }

/** Column reductions of a host weight [rows, cols], in float64. */
export function columnStats(data: ArrayLike<number>, rows: number, cols: number): ColumnStats {
  const absMean = new Float64Array(cols), sqSum = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) {
      const w = data[base + c]!;
      absMean[c] = absMean[c]! + Math.abs(w);
      sqSum[c] = sqSum[c]! + w * w;
    }
  }
  for (let c = 0; c < cols; c++) absMean[c] = absMean[c]! / rows;
  return { absMean, sqSum };
}

function need(v: Float64Array | undefined, what: string): Float64Array {
  if (!v) throw new Error(`internal: forward statistics lack ${what}`);
  return v;
}

/** mean_r |W_rc| · √s_c — Wanda-sp's channel score, and FLAP's WIFN (the same formula). */
export function wandaChannelScores(col: ColumnStats, stats: LinearInputStats): Float64Array {
  const s = need(stats.squares, 'scaler_row');
  return col.absMean.map((a, c) => a * Math.sqrt(s[c]!));
}

/** FLAP's fluctuation metric of each input channel, before squaring and standardization. */
export const flapMetrics: Readonly<Record<FlapMetric, { fluctuation: boolean; squares: boolean; score(col: ColumnStats, stats: LinearInputStats): Float64Array }>> = {
  IFV: { fluctuation: true, squares: false, score: (_col, st) => Float64Array.from(need(st.fluctuation, 'fluc_inp')) },
  WIFV: { fluctuation: true, squares: false, score: (col, st) => need(st.fluctuation, 'fluc_inp').map((f, c) => f * col.sqSum[c]!) },
  WIFN: { fluctuation: false, squares: true, score: wandaChannelScores },
};

/** FLAP's `standarlization` of one layer's vector: (x − mean) / std with the unbiased std. */
export function standardize(x: Float64Array, where: string): Float64Array {
  const n = x.length;
  let mean = 0;
  for (const v of x) mean += v;
  mean /= n;
  let sq = 0;
  for (const v of x) sq += (v - mean) ** 2;
  const std = n > 1 ? Math.sqrt(sq / (n - 1)) : 0;
  if (!(std > 0)) {
    // FLAP divides by zero here (NaN scores); refuse instead of ranking NaNs.
    throw new LopperError('LP4013', `${where}: every channel has the same FLAP metric (${mean}), which cannot be standardized`, {
      hint: 'Use more calibration samples (IFV/WIFV need at least 2), or another importance.',
    });
  }
  return x.map((v) => (v - mean) / std);
}

/** FLAP channel scores of one layer's o_proj (attention: metric squared) or down_proj (mlp), standardized. */
export function flapChannelScores(kind: 'attention' | 'mlp', metric: FlapMetric, col: ColumnStats, stats: LinearInputStats, where: string): Float64Array {
  const m = flapMetrics[metric].score(col, stats);
  return standardize(kind === 'attention' ? m.map((v) => v * v) : m, where);
}
