// Forward statistics for the gradient-free importance kinds: per-channel running statistics of the inputs of chosen
// linear projections (o_proj / down_proj), and per-layer block influence, accumulated on the device over forward
// passes of the calibration batch (no gradients, no tape). The model is the dense one throughout, so layer i's
// statistics see the outputs of the unpruned layers 0..i−1 — FLAP's prune_flap collects them the same way (its
// `outs[j] = layer(inps[j])` runs the unpruned layer and compresses only after every layer is measured).
//
// The recurrences are the references' own, per calibration sample n = 0..N−1 of T tokens, x_{n,t} one input row:
//   - FLAP lib/layerwrapper.py BiasGPT.add_batch (one sample per call):
//       baseline μ_n = μ_{n−1}·n/(n+1) + mean_t x_{n,t}/(n+1)                       (the running token mean)
//       fluc F_0 = 0,  F_n = F_{n−1}·(n−1)/n + Σ_t (x_{n,t} − μ_n)²/(n+1)   (n ≥ 1)
//     `old_baseline_inp` aliases the tensor updated in place, so the deviation is taken from the *updated* μ_n, and
//     the first sample adds nothing. With G_n = n·F_n this unrolls to F_{N−1} = Σ_{n≥1} n/(n+1)·S_n / (N−1), S_n =
//     Σ_t (x_{n,t} − μ_n)², which is what is accumulated here (G on the device, S_n from each sample's own μ_n).
//   - Wanda lib/layerwrapper.py WrappedGPT.add_batch `scaler_row` (and BiasGPT's `scaler_inp` for WIFN):
//       s = (1/N) Σ_n ‖x_{n,·}‖² per input channel (nsamples counts samples, so this is a mean over samples of the
//       sum over a sample's tokens, not a per-token mean; a constant factor T that no ranking sees).
//   - ShortGPT shortgpt/metrics.py block_influence: BI of a layer = 1 − cos(x_in, x_out) per token, cos = NaN
//     (a zero-norm token) counted as 0.5; here averaged over all calibration tokens (ShortGPT sums; same order).
import * as tf from '@tensorflow/tfjs-core';
import type { LlamaModel } from '../model/llama.js';

export interface StatsRequest {
  /** Linear prefixes whose inputs are measured, e.g. `model.layers.3.self_attn.o_proj`. */
  linears: readonly string[];
  /** FLAP's fluctuation F (IFV / WIFV); the baseline mean is always measured. */
  fluctuation: boolean;
  /** Wanda's scaler_row / FLAP's scaler_inp. */
  squares: boolean;
  /** ShortGPT block influence of every decoder layer. */
  blockInfluence: boolean;
}

export interface LinearInputStats {
  /** FLAP baseline_inp: mean input over every calibration token. */
  mean: Float64Array;
  /** FLAP fluc_inp (requested with `fluctuation`). */
  fluctuation?: Float64Array;
  /** Wanda scaler_row (requested with `squares`). */
  squares?: Float64Array;
}

export interface ForwardStats {
  samples: number;
  linear: Map<string, LinearInputStats>;
  /** Mean 1 − cos(x_in, x_out) per decoder layer (requested with `blockInfluence`). */
  blockInfluence?: Float64Array;
}

/** Accumulators of one linear's inputs: Σ_n mean_t x (for μ_n), G = Σ n/(n+1)·S_n, Σ_n Σ_t x². */
interface Accumulators { sumMeans: tf.Tensor; g?: tf.Tensor; squares?: tf.Tensor }

/** Replaces a kept accumulator by `next` (kept), disposing the old one. */
function swap<K>(holder: Map<K, tf.Tensor>, key: K, next: tf.Tensor): void {
  const old = holder.get(key);
  holder.set(key, tf.keep(next));
  old?.dispose();
}

/** Tokens per forward batch: whole samples, about this many tokens. */
const BATCH_TOKENS = 8192;

export interface StatsRun {
  /** Called between batches (cancellation check, progress). */
  between?: (samplesDone: number) => Promise<void>;
}

/** Runs the calibration batch `ids` ([samples, seqLen], row-major) through `model` and returns the statistics. */
export async function forwardStatistics(model: LlamaModel, ids: Int32Array, samples: number, seqLen: number, req: StatsRequest, run: StatsRun = {}): Promise<ForwardStats> {
  const tracked = new Set(req.linears);
  const acc = new Map<string, Map<keyof Accumulators, tf.Tensor>>();
  const bi = new Map<number, tf.Tensor>();
  const perBatch = Math.max(1, Math.floor(BATCH_TOKENS / seqLen));
  try {
    for (let n0 = 0; n0 < samples; n0 += perBatch) {
      await run.between?.(n0);
      const B = Math.min(perBatch, samples - n0);
      tf.tidy(() => {
        const x = tf.tensor2d(ids.subarray(n0 * seqLen, (n0 + B) * seqLen), [B, seqLen], 'int32');
        // n and n/(n+1) of every sample of the batch, as [B, 1] columns.
        const n = tf.reshape(tf.add(tf.range(0, B, 1, 'float32'), n0), [B, 1]);
        const h = model.hidden(x, {
          linear: (name, input, base) => {
            if (tracked.has(name)) observeLinear(acc, name, input, B, seqLen, n, req);
            return base(input);
          },
          ...(req.blockInfluence ? { layerObserver: (i: number, a: tf.Tensor2D, b: tf.Tensor2D) => observeLayer(bi, i, a, b) } : {}),
        });
        h.dispose();
      });
    }
    await run.between?.(samples);
    const out: ForwardStats = { samples, linear: new Map() };
    for (const name of req.linears) {
      const a = acc.get(name);
      if (!a) throw new Error(`internal: no inputs of ${name} were seen in the forward pass`);
      const mean = scaled(await host(a.get('sumMeans')!), 1 / samples);
      const s: LinearInputStats = { mean };
      // F_{N−1} = G / (N − 1); with one sample FLAP's fluc_inp stays 0.
      if (req.fluctuation) s.fluctuation = samples > 1 ? scaled(await host(a.get('g')!), 1 / (samples - 1)) : new Float64Array(mean.length);
      if (req.squares) s.squares = scaled(await host(a.get('squares')!), 1 / samples);
      out.linear.set(name, s);
    }
    if (req.blockInfluence) {
      const layers = model.config.numHiddenLayers;
      out.blockInfluence = new Float64Array(layers);
      for (let i = 0; i < layers; i++) out.blockInfluence[i] = (await host(bi.get(i)!))[0]! / (samples * seqLen);
    }
    return out;
  } finally {
    for (const a of acc.values()) for (const t of a.values()) t.dispose();
    for (const t of bi.values()) t.dispose();
  }
}

function observeLinear(acc: Map<string, Map<keyof Accumulators, tf.Tensor>>, name: string, input: tf.Tensor, B: number, T: number, n: tf.Tensor, req: StatsRequest): void {
  let a = acc.get(name);
  if (!a) { a = new Map(); acc.set(name, a); }
  const C = input.shape[1]!;
  const x3 = tf.reshape(input, [B, T, C]);
  const sampleMeans = tf.div(tf.sum(x3, 1), T); // [B, C]
  const before = a.get('sumMeans');
  // μ_n = (Σ_{k≤n} mean_t x_k) / (n + 1) for each sample n of the batch.
  const prefix = before ? tf.add(tf.cumsum(sampleMeans, 0), before) : tf.cumsum(sampleMeans, 0);
  if (req.fluctuation) {
    const mu = tf.div(prefix, tf.add(n, 1));
    const s = tf.sum(tf.square(tf.sub(x3, tf.expandDims(mu, 1))), 1); // S_n, [B, C]
    const g = tf.sum(tf.mul(s, tf.div(n, tf.add(n, 1))), 0);
    const old = a.get('g');
    swap(a, 'g', old ? tf.add(old, g) : g);
  }
  if (req.squares) {
    const q = tf.sum(tf.square(input), 0);
    const old = a.get('squares');
    swap(a, 'squares', old ? tf.add(old, q) : q);
  }
  swap(a, 'sumMeans', tf.reshape(tf.slice(prefix, [B - 1, 0], [1, C]), [C]));
}

function observeLayer(bi: Map<number, tf.Tensor>, i: number, input: tf.Tensor2D, output: tf.Tensor2D): void {
  const dot = tf.sum(tf.mul(input, output), 1);
  const norms = tf.mul(tf.norm(input, 'euclidean', 1), tf.norm(output, 'euclidean', 1));
  // ShortGPT: sim.nan_to_num(nan=0.5) — a token with a zero-norm side has cos 0/0.
  const cos = tf.where(tf.equal(norms, 0), tf.fill(norms.shape, 0.5), tf.div(dot, norms));
  const sum = tf.reshape(tf.sum(tf.sub(1, cos)), [1]);
  const old = bi.get(i);
  swap(bi, i, old ? tf.add(old, sum) : sum);
}

async function host(t: tf.Tensor): Promise<Float64Array> {
  return Float64Array.from((await t.data()) as Float32Array);
}

function scaled(v: Float64Array, k: number): Float64Array {
  return v.map((x) => x * k);
}
