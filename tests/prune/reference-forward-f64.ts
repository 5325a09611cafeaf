// An independent float64 implementation of the forward-statistics pruning methods, written from their papers and
// repositories (it shares no code with src/prune; the forward is tests/eval/reference-llama.ts), one calibration
// sample at a time as the references feed their hooks:
//   Wanda lib/layerwrapper.py WrappedGPT.add_batch:   scaler *= n/(n+1); n += 1; scaler += ‖x‖²/n  (x: the sample's
//     tokens of one input channel), and FLAP lib/prune.py prune_wanda_sp: W_metric = |W|·√scaler, mean over rows,
//     a head = the sum of its channels;
//   FLAP lib/layerwrapper.py BiasGPT.add_batch: old = baseline (the same tensor, updated in place below);
//     baseline = baseline·n/(n+1) + mean_t(x)/(n+1); fluc = 0 for the first sample, else fluc·(n−1)/n +
//     Σ_t (x − baseline)(x − old)/(n+1); scaler_inp like Wanda's; metrics IFV / WIFV / WIFN; prune_flap squares the
//     attention metric, standardizes each layer ((x − mean)/std, unbiased), averages per head, and AL-AM keeps the
//     units scoring above sorted[argmin |cumsum(weight) − Σweight·(1 − ratio)|]; compress adds
//     (mean_inp·removed) @ Wᵀ to the o_proj / down_proj bias;
//   ShortGPT shortgpt/metrics.py block_influence: 1 − cos(x_in, x_out) per token (NaN → 0.5), summed per layer;
//     remove_layers drops argsort(importances)[:n].
// GQA (stories260K: 8 query heads, 4 KV heads) is where the references say nothing: as lopper documents, a KV group
// scores the sum (Wanda-sp) or the mean (FLAP) of its query heads' scores, and weighs its q/k/v/o weights in AL-AM.
import { ReferenceLlama } from '../eval/reference-llama.js';

/** Per layer, per sample: the layer's input/output and its o_proj / down_proj inputs, [T, dim] row-major. */
export interface Taps { input: Float64Array[]; output: Float64Array[]; oProj: Float64Array[]; down: Float64Array[] }

export function collectTaps(model: ReferenceLlama, ids: ArrayLike<number>, samples: number, seqLen: number): Taps[] {
  const taps: Taps[] = Array.from({ length: model.cfg.layers }, () => ({ input: [], output: [], oProj: [], down: [] }));
  model.onLayer = (l, t) => {
    taps[l]!.input.push(t.input);
    taps[l]!.output.push(t.output);
    taps[l]!.oProj.push(t.oProjInput);
    taps[l]!.down.push(t.downProjInput);
  };
  for (let j = 0; j < samples; j++) model.tokenLogProbs(Array.from({ length: seqLen }, (_, t) => ids[j * seqLen + t]!));
  model.onLayer = undefined;
  return taps;
}

/** Column c of sample x [T, C]. */
function channel(x: Float64Array, T: number, C: number, c: number): number[] {
  return Array.from({ length: T }, (_, t) => x[t * C + c]!);
}

/** Wanda's scaler_row of one projection's input, sample by sample. */
export function wandaScaler(samples: Float64Array[], T: number, C: number): number[] {
  const scaler = new Array<number>(C).fill(0);
  let n = 0;
  for (const x of samples) {
    for (let c = 0; c < C; c++) scaler[c] = scaler[c]! * (n / (n + 1));
    n += 1;
    for (let c = 0; c < C; c++) scaler[c] = scaler[c]! + channel(x, T, C, c).reduce((a, v) => a + v * v, 0) / n;
  }
  return scaler;
}

/** FLAP BiasGPT: baseline_inp, fluc_inp (IFV/WIFV) and scaler_inp (WIFN), sample by sample. */
export function flapStats(samples: Float64Array[], T: number, C: number): { baseline: number[]; fluc: number[]; scaler: number[] } {
  const baseline = new Array<number>(C).fill(0), fluc = new Array<number>(C).fill(0), scaler = new Array<number>(C).fill(0);
  let n = 0;
  for (const x of samples) {
    for (let c = 0; c < C; c++) {
      const xs = channel(x, T, C, c);
      baseline[c] = baseline[c]! * (n / (n + 1)) + xs.reduce((a, v) => a + v, 0) / T / (n + 1);
      const old = baseline[c]!; // the aliased old_baseline_inp: already updated
      scaler[c] = scaler[c]! * (n / (n + 1)) + xs.reduce((a, v) => a + v * v, 0) / (n + 1);
      fluc[c] = n === 0 ? 0 : fluc[c]! * ((n - 1) / n) + xs.reduce((a, v) => a + (v - baseline[c]!) * (v - old), 0) / (n + 1);
    }
    n += 1;
  }
  return { baseline, fluc, scaler };
}

/** Column c of W [out, C]. */
function column(w: ArrayLike<number>, out: number, C: number, c: number): number[] {
  return Array.from({ length: out }, (_, r) => w[r * C + c]!);
}

/** mean over rows of |W_rc|·√s_c (Wanda-sp's W_metric.mean(axis=0); FLAP's WIFN). */
export function meanAbsTimesRoot(w: ArrayLike<number>, out: number, C: number, s: number[]): number[] {
  return s.map((sc, c) => column(w, out, C, c).reduce((a, v) => a + Math.abs(v) * Math.sqrt(sc), 0) / out);
}

export type Metric = 'WIFV' | 'IFV' | 'WIFN';

export function flapMetric(metric: Metric, w: ArrayLike<number>, out: number, C: number, st: ReturnType<typeof flapStats>): number[] {
  if (metric === 'IFV') return st.fluc.slice();
  if (metric === 'WIFV') return st.fluc.map((f, c) => f * column(w, out, C, c).reduce((a, v) => a + v * v, 0));
  return meanAbsTimesRoot(w, out, C, st.scaler);
}

export function standardized(x: number[]): number[] {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const std = Math.sqrt(x.reduce((a, v) => a + (v - mean) ** 2, 0) / (x.length - 1));
  return x.map((v) => (v - mean) / std);
}

/** Per-channel scores [heads·d] → per KV group, summing (Wanda-sp) or averaging (FLAP) over its heads' channels. */
export function perKvGroup(ch: number[], heads: number, kv: number, d: number, how: 'sum' | 'mean'): number[] {
  const nRep = heads / kv;
  return Array.from({ length: kv }, (_, g) => {
    let s = 0;
    for (let h = g * nRep; h < (g + 1) * nRep; h++) for (let j = 0; j < d; j++) s += ch[h * d + j]!;
    return how === 'sum' ? s : s / (nRep * d);
  });
}

/** Wanda-sp's uniform threshold: thresh = sorted[int(ratio·n)], keep metric ≥ thresh (ascending indices). */
export function wandaSpKeep(scores: number[], ratio: number): number[] {
  const sorted = scores.slice().sort((a, b) => a - b);
  const thresh = sorted[Math.floor(ratio * scores.length)]!;
  return scores.flatMap((s, i) => (s >= thresh ? [i] : []));
}

/** FLAP AL-AM: units {layer, kind, index, score, weight}; kept = score > sorted[argmin |cumsum − total·(1−ratio)|]. */
export function flapAlAmKeep(units: Array<{ key: string; score: number; weight: number }>, ratio: number): Set<string> {
  const sorted = units.slice().sort((a, b) => b.score - a.score);
  const total = units.reduce((a, u) => a + u.weight, 0);
  let cum = 0, best = 0, gap = Infinity;
  sorted.forEach((u, j) => {
    cum += u.weight;
    if (Math.abs(cum - total * (1 - ratio)) < gap) { gap = Math.abs(cum - total * (1 - ratio)); best = j; }
  });
  const threshold = sorted[best]!.score;
  return new Set(units.filter((u) => u.score > threshold).map((u) => u.key));
}

/** FLAP compress: bias[r] = Σ_{c removed} W[r, c]·baseline[c]. */
export function compensationBias(w: ArrayLike<number>, out: number, C: number, baseline: number[], kept: Set<number>): number[] {
  return Array.from({ length: out }, (_, r) => baseline.reduce((a, m, c) => a + (kept.has(c) ? 0 : w[r * C + c]! * m), 0));
}

/** ShortGPT: Σ over every token of every sample of 1 − cos(x_in, x_out), per layer. */
export function blockInfluence(taps: Taps[], T: number, H: number): number[] {
  return taps.map((l) => {
    let s = 0;
    l.input.forEach((x, j) => {
      const y = l.output[j]!;
      for (let t = 0; t < T; t++) {
        let dot = 0, nx = 0, ny = 0;
        for (let i = 0; i < H; i++) { dot += x[t * H + i]! * y[t * H + i]!; nx += x[t * H + i]! ** 2; ny += y[t * H + i]! ** 2; }
        const cos = nx * ny === 0 ? 0.5 : dot / Math.sqrt(nx * ny);
        s += 1 - cos;
      }
    });
    return s;
  });
}

/** ShortGPT remove_layers: the n layers of lowest importance. */
export function shortGptRemoved(importances: number[], n: number): number[] {
  return importances.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, n).map(([, i]) => i).sort((a, b) => a - b);
}
