// Rotary position embeddings as Hugging Face LLaMA computes them (rotate_half, non-interleaved halves):
// inv_freq[i] = 1 / theta^(2i/d), optionally rescaled (linear: ÷factor; llama3: transformers'
// _compute_llama3_parameters), angle = t · inv_freq, cos/sin tables of width d = cat(freqs, freqs).
// transformers computes inv_freq and the angles t·inv_freq in float32 (even for a float64 model: the rotary
// module casts with .float()), so the same roundings are reproduced here with Math.fround; cos/sin are then taken
// in float64 and rounded to float32.
import type { LlamaConfig } from './types.js';

export function inverseFrequencies(config: LlamaConfig): Float64Array {
  const d = config.headDim;
  const half = d / 2;
  const inv = new Float64Array(half);
  const fr = Math.fround;
  for (let i = 0; i < half; i++) inv[i] = fr(1 / fr(fr(config.ropeTheta) ** fr((2 * i) / d)));
  const rs = config.ropeScaling;
  if (!rs || rs.ropeType === 'default') return inv;
  if (rs.ropeType === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = fr(inv[i]! / rs.factor!);
    return inv;
  }
  const factor = rs.factor!, low = rs.lowFreqFactor!, high = rs.highFreqFactor!, old = rs.originalMaxPositionEmbeddings!;
  const lowWavelen = old / low;
  const highWavelen = old / high;
  for (let i = 0; i < half; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    let g = wavelen > lowWavelen ? f / factor : f;
    if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
      const smooth = (old / wavelen - low) / (high - low);
      g = ((1 - smooth) * g) / factor + smooth * g;
    }
    inv[i] = fr(g);
  }
  return inv;
}

/** cos and sin tables [length, headDim] (row t = position offset + t). */
export function ropeTables(config: LlamaConfig, length: number, offset = 0): { cos: Float32Array; sin: Float32Array } {
  const d = config.headDim;
  const half = d / 2;
  const inv = inverseFrequencies(config);
  const cos = new Float32Array(length * d);
  const sin = new Float32Array(length * d);
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround((t + offset) * inv[i]!);
      const c = Math.cos(a), s = Math.sin(a);
      cos[t * d + i] = c; cos[t * d + half + i] = c;
      sin[t * d + i] = s; sin[t * d + half + i] = s;
    }
  }
  return { cos, sin };
}
