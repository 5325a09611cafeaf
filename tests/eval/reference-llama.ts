// An independent float64 LLaMA forward in plain JavaScript (no tfjs, no lopper model code), written from the
// Hugging Face LlamaForCausalLM definition: RMSNorm, rotate_half RoPE, grouped-query causal attention, SwiGLU,
// tied or untied LM head, and the projection biases transformers adds under attention_bias / mlp_bias (any
// `<proj>.bias` tensor present is added). Reads config.json and model.safetensors (F32 only) itself. For checking
// perplexity, and (onLayer) for the forward statistics of the pruning methods.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface RefConfig {
  hidden: number;
  layers: number;
  /** Per layer (pruned models carry *_per_layer lists in config.json, DESIGN.md). */
  inter: number[];
  heads: number[];
  kvHeads: number[];
  headDim: number;
  vocab: number;
  eps: number;
  theta: number;
  tied: boolean;
}

export interface PlainTensor {
  dtype: string;
  shape: number[];
  data: Float64Array | Int32Array;
}

/** Reads a safetensors file's F32 (as float64) and I32 tensors. */
export function readSafetensorsPlain(path: string): Map<string, PlainTensor> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, PlainTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = info.data_offsets;
    const bytes = buf.buffer.slice(buf.byteOffset + 8 + n + a, buf.byteOffset + 8 + n + b);
    if (info.dtype === 'F32') out.set(name, { dtype: 'F32', shape: info.shape, data: Float64Array.from(new Float32Array(bytes)) });
    else if (info.dtype === 'I32') out.set(name, { dtype: 'I32', shape: info.shape, data: new Int32Array(bytes) });
    else throw new Error(`reference: ${name} is ${info.dtype}; only F32 and I32 are supported`);
  }
  return out;
}

/** What one decoder layer saw, for T tokens: its input and output residual stream [T, H], o_proj's input
 *  [T, heads·d] and down_proj's input [T, I]. */
export interface LayerTaps { input: Float64Array; oProjInput: Float64Array; downProjInput: Float64Array; output: Float64Array }

export class ReferenceLlama {
  readonly cfg: RefConfig;
  private readonly w = new Map<string, Float64Array>();
  /** Called after every decoder layer of tokenLogProbs with what the layer saw (copies). */
  onLayer?: (layer: number, taps: LayerTaps) => void;

  constructor(dir: string) {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const perLayer = (list: number[] | undefined, value: number): number[] => list ?? Array<number>(c.num_hidden_layers).fill(value);
    this.cfg = {
      hidden: c.hidden_size, layers: c.num_hidden_layers,
      inter: perLayer(c.intermediate_size_per_layer, c.intermediate_size),
      heads: perLayer(c.num_attention_heads_per_layer, c.num_attention_heads),
      kvHeads: perLayer(c.num_key_value_heads_per_layer, c.num_key_value_heads ?? c.num_attention_heads),
      headDim: c.head_dim ?? c.hidden_size / c.num_attention_heads,
      vocab: c.vocab_size, eps: c.rms_norm_eps, theta: c.rope_theta ?? 10000, tied: c.tie_word_embeddings ?? false,
    };
    for (const [name, t] of readSafetensorsPlain(join(dir, 'model.safetensors'))) {
      if (t.dtype !== 'F32') throw new Error(`reference: ${name} is ${t.dtype}, expected F32`);
      this.w.set(name, t.data as Float64Array);
    }
  }

  private get(name: string): Float64Array {
    const t = this.w.get(name);
    if (!t) throw new Error(`reference: missing ${name}`);
    return t;
  }

  /** y[t, o] = Σ_i W[o, i] x[t, i] (+ b[o]) for x [T, in], W [out, in]. */
  private linear(x: Float64Array, T: number, inDim: number, W: Float64Array, outDim: number, b?: Float64Array): Float64Array {
    const y = new Float64Array(T * outDim);
    for (let t = 0; t < T; t++) {
      const xo = t * inDim;
      for (let o = 0; o < outDim; o++) {
        let s = b ? b[o]! : 0;
        const wo = o * inDim;
        for (let i = 0; i < inDim; i++) s += W[wo + i]! * x[xo + i]!;
        y[t * outDim + o] = s;
      }
    }
    return y;
  }

  private rmsNorm(x: Float64Array, T: number, weight: Float64Array): Float64Array {
    const H = this.cfg.hidden;
    const y = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      let ss = 0;
      for (let i = 0; i < H; i++) ss += x[t * H + i]! ** 2;
      const r = 1 / Math.sqrt(ss / H + this.cfg.eps);
      for (let i = 0; i < H; i++) y[t * H + i] = x[t * H + i]! * r * weight[i]!;
    }
    return y;
  }

  /** In place: HF apply_rotary_pos_emb with rotate_half, positions 0..T-1, for `nh` heads of headDim. */
  private rope(x: Float64Array, T: number, nh: number): void {
    const d = this.cfg.headDim;
    const half = d / 2;
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < nh; h++) {
        const base = (t * nh + h) * d;
        for (let i = 0; i < half; i++) {
          const freq = t / Math.pow(this.cfg.theta, (2 * i) / d);
          const c = Math.cos(freq), s = Math.sin(freq);
          const a = x[base + i]!, b = x[base + i + half]!;
          x[base + i] = a * c - b * s;
          x[base + i + half] = b * c + a * s;
        }
      }
    }
  }

  /** Log-probabilities [T-1] of ids[t+1] given ids[..t]. */
  tokenLogProbs(ids: ArrayLike<number>): Float64Array {
    const { hidden: H, headDim: d, vocab: V } = this.cfg;
    const T = ids.length;
    const emb = this.get('model.embed_tokens.weight');
    let x = new Float64Array(T * H);
    for (let t = 0; t < T; t++) x.set(emb.subarray(ids[t]! * H, (ids[t]! + 1) * H), t * H);
    for (let l = 0; l < this.cfg.layers; l++) {
      const p = `model.layers.${l}`;
      const nh = this.cfg.heads[l]!, nkv = this.cfg.kvHeads[l]!, I = this.cfg.inter[l]!;
      const input = Float64Array.from(x);
      const h = this.rmsNorm(x, T, this.get(`${p}.input_layernorm.weight`));
      const q = this.linear(h, T, H, this.get(`${p}.self_attn.q_proj.weight`), nh * d, this.w.get(`${p}.self_attn.q_proj.bias`));
      const k = this.linear(h, T, H, this.get(`${p}.self_attn.k_proj.weight`), nkv * d, this.w.get(`${p}.self_attn.k_proj.bias`));
      const v = this.linear(h, T, H, this.get(`${p}.self_attn.v_proj.weight`), nkv * d, this.w.get(`${p}.self_attn.v_proj.bias`));
      this.rope(q, T, nh);
      this.rope(k, T, nkv);
      const att = new Float64Array(T * nh * d);
      const scores = new Float64Array(T);
      const group = nh / nkv;
      for (let hh = 0; hh < nh; hh++) {
        const kh = Math.floor(hh / group);
        for (let t = 0; t < T; t++) {
          let max = -Infinity;
          for (let s = 0; s <= t; s++) {
            let dot = 0;
            for (let i = 0; i < d; i++) dot += q[(t * nh + hh) * d + i]! * k[(s * nkv + kh) * d + i]!;
            scores[s] = dot / Math.sqrt(d);
            if (scores[s]! > max) max = scores[s]!;
          }
          let z = 0;
          for (let s = 0; s <= t; s++) z += scores[s] = Math.exp(scores[s]! - max);
          for (let s = 0; s <= t; s++) {
            const pr = scores[s]! / z;
            for (let i = 0; i < d; i++) att[(t * nh + hh) * d + i] += pr * v[(s * nkv + kh) * d + i]!;
          }
        }
      }
      const o = this.linear(att, T, nh * d, this.get(`${p}.self_attn.o_proj.weight`), H, this.w.get(`${p}.self_attn.o_proj.bias`));
      for (let i = 0; i < x.length; i++) x[i] += o[i]!;
      const h2 = this.rmsNorm(x, T, this.get(`${p}.post_attention_layernorm.weight`));
      const gate = this.linear(h2, T, H, this.get(`${p}.mlp.gate_proj.weight`), I, this.w.get(`${p}.mlp.gate_proj.bias`));
      const up = this.linear(h2, T, H, this.get(`${p}.mlp.up_proj.weight`), I, this.w.get(`${p}.mlp.up_proj.bias`));
      for (let i = 0; i < gate.length; i++) gate[i] = (gate[i]! / (1 + Math.exp(-gate[i]!))) * up[i]!;
      const down = this.linear(gate, T, I, this.get(`${p}.mlp.down_proj.weight`), H, this.w.get(`${p}.mlp.down_proj.bias`));
      for (let i = 0; i < x.length; i++) x[i] += down[i]!;
      this.onLayer?.(l, { input, oProjInput: att, downProjInput: gate, output: Float64Array.from(x) });
    }
    x = this.rmsNorm(x, T, this.get('model.norm.weight'));
    const head = this.cfg.tied ? emb : this.get('lm_head.weight');
    const logits = this.linear(x, T, H, head, V);
    this.lastLogits = logits;
    const out = new Float64Array(T - 1);
    for (let t = 0; t < T - 1; t++) {
      let max = -Infinity;
      for (let j = 0; j < V; j++) max = Math.max(max, logits[t * V + j]!);
      let z = 0;
      for (let j = 0; j < V; j++) z += Math.exp(logits[t * V + j]! - max);
      out[t] = logits[t * V + ids[t + 1]!]! - max - Math.log(z);
    }
    return out;
  }

  /** Logits [T, V] of the last tokenLogProbs call. */
  lastLogits: Float64Array = new Float64Array(0);
}
