// An independent float64 LLaMA forward in plain JS, for checking lopper's float32 evaluation on small real models
// (stories260K): RMSNorm, rotate-half RoPE (no scaling), grouped-query causal attention, SwiGLU, log-softmax, all in
// float64 from the checkpoint's float32 weights. Slow (one position at a time); for tests and bench/zero-shot-f64.ts.
import type { LlamaConfig, WeightMap } from '../../src/model/types.js';

/** The weights as float64 arrays by HF name. */
export function float64Weights(weights: WeightMap): Map<string, Float64Array> {
  return new Map([...weights].map(([n, t]) => [n, Float64Array.from(t.data)]));
}

/** log p(ids[t+1] | ids[..t]) for t = 0..T-2 in float64. */
export function float64LogProbs(config: LlamaConfig, w: Map<string, Float64Array>, ids: number[]): Float64Array {
  const H = config.hiddenSize, D = config.headDim, V = config.vocabSize, T = ids.length;
  const matvec = (m: Float64Array, x: Float64Array, rows: number, cols: number, xo = 0): Float64Array => {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) { let s = 0; const o = r * cols; for (let c = 0; c < cols; c++) s += m[o + c]! * x[xo + c]!; y[r] = s; }
    return y;
  };
  const rms = (x: Float64Array, g: Float64Array): Float64Array => {
    let s = 0; for (let i = 0; i < H; i++) s += x[i]! * x[i]!;
    const inv = 1 / Math.sqrt(s / H + config.rmsNormEps);
    return Float64Array.from(x, (v, i) => v * inv * g[i]!);
  };
  const inv = Float64Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(config.ropeTheta, (2 * i) / D));
  const rope = (v: Float64Array, heads: number, t: number): void => {
    for (let h = 0; h < heads; h++) {
      const o = h * D;
      for (let i = 0; i < D / 2; i++) {
        const a = t * inv[i]!, c = Math.cos(a), s = Math.sin(a);
        const x1 = v[o + i]!, x2 = v[o + i + D / 2]!;
        v[o + i] = x1 * c - x2 * s;
        v[o + i + D / 2] = x2 * c + x1 * s;
      }
    }
  };
  let xs = ids.map((id) => w.get('model.embed_tokens.weight')!.slice(id * H, (id + 1) * H));
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const { numAttentionHeads: nh, numKeyValueHeads: kv, intermediateSize: I } = config.layers[l]!;
    const p = (n: string) => w.get(`model.layers.${l}.${n}.weight`)!;
    const normed = xs.map((x) => rms(x, p('input_layernorm')));
    const q = normed.map((x, t) => { const v = matvec(p('self_attn.q_proj'), x, nh * D, H); rope(v, nh, t); return v; });
    const k = normed.map((x, t) => { const v = matvec(p('self_attn.k_proj'), x, kv * D, H); rope(v, kv, t); return v; });
    const val = normed.map((x) => matvec(p('self_attn.v_proj'), x, kv * D, H));
    xs = xs.map((x, t) => {
      const att = new Float64Array(nh * D);
      for (let h = 0; h < nh; h++) {
        const g = Math.floor(h / (nh / kv));
        const scores = new Float64Array(t + 1);
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          let dot = 0; for (let d = 0; d < D; d++) dot += q[t]![h * D + d]! * k[s]![g * D + d]!;
          scores[s] = dot / Math.sqrt(D); if (scores[s]! > max) max = scores[s]!;
        }
        let sum = 0; for (let s = 0; s <= t; s++) { scores[s] = Math.exp(scores[s]! - max); sum += scores[s]!; }
        for (let s = 0; s <= t; s++) for (let d = 0; d < D; d++) att[h * D + d] += (scores[s]! / sum) * val[s]![g * D + d]!;
      }
      const o = matvec(p('self_attn.o_proj'), att, H, nh * D);
      const h1 = Float64Array.from(x, (v, i) => v + o[i]!);
      const n2 = rms(h1, p('post_attention_layernorm'));
      const gate = matvec(p('mlp.gate_proj'), n2, I, H), up = matvec(p('mlp.up_proj'), n2, I, H);
      const act = Float64Array.from(gate, (gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]!);
      const down = matvec(p('mlp.down_proj'), act, H, I);
      return Float64Array.from(h1, (v, i) => v + down[i]!);
    });
  }
  const head = w.get(config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')!;
  const out = new Float64Array(T - 1);
  for (let t = 0; t < T - 1; t++) {
    const logits = matvec(head, rms(xs[t]!, w.get('model.norm.weight')!), V, H);
    let max = -Infinity; for (const v of logits) if (v > max) max = v;
    let sum = 0; for (const v of logits) sum += Math.exp(v - max);
    out[t] = logits[ids[t + 1]!]! - max - Math.log(sum);
  }
  return out;
}

