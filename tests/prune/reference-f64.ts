// An independent float64 implementation of LLM-Pruner's block-wise importance for a GQA LLaMA, written straight from
// reference/llm-pruner.md §2–3 with plain loops over [out, in] matrices (it shares no code with src/prune):
//   per-weight salience: l1 |w|, l2 w², vectorize w·g (abs taken after the row/column sum), param_first |w·g|,
//   param_second |w²·F|, param_mix |w·g − ½·w²·F|;
//   channel score of a member = Σ over the channel's row (q/k/v/gate/up) or column (o/down);
//   KV group kv = k and v rows kv·d…kv·d+d−1 + q rows and o columns of query heads h with floor(h / n_rep) = kv,
//   summed over members and over head_dim channels (reduce: sum); MLP channel c = gate row c + up row c + down col c;
//   keep floor(units·(1 − ratio)) highest (ties: lower index), ascending.

export interface Mat { rows: number; cols: number; data: ArrayLike<number> }
export type Kind = 'l1' | 'l2' | 'vectorize' | 'param_first' | 'param_second' | 'param_mix';
export interface Source { w(name: string): Mat; g(name: string): Mat | undefined; f(name: string): Mat | undefined }

function salience(kind: Kind, w: number, g: number, f: number): number {
  switch (kind) {
    case 'l1': return Math.abs(w);
    case 'l2': return w * w;
    case 'vectorize': return w * g;
    case 'param_first': return Math.abs(w * g);
    case 'param_second': return Math.abs(w * w * f);
    case 'param_mix': return Math.abs(w * g - 0.5 * w * w * f);
  }
}

/** Score of row r (byRow) or column r of a parameter. */
function lineScore(kind: Kind, src: Source, name: string, r: number, byRow: boolean): number {
  const w = src.w(name);
  const g = src.g(name);
  const f = src.f(name);
  let s = 0;
  const n = byRow ? w.cols : w.rows;
  for (let k = 0; k < n; k++) {
    const i = byRow ? r * w.cols + k : k * w.cols + r;
    s += salience(kind, w.data[i]!, g ? g.data[i]! : 0, f ? f.data[i]! : 0);
  }
  return kind === 'vectorize' ? Math.abs(s) : s;
}

export function kvGroupScores(kind: Kind, src: Source, layer: number, heads: number, kvHeads: number, headDim: number): number[] {
  const p = `model.layers.${layer}.self_attn`;
  const nRep = heads / kvHeads;
  const out: number[] = [];
  for (let kv = 0; kv < kvHeads; kv++) {
    let s = 0;
    for (let j = 0; j < headDim; j++) {
      s += lineScore(kind, src, `${p}.k_proj.weight`, kv * headDim + j, true);
      s += lineScore(kind, src, `${p}.v_proj.weight`, kv * headDim + j, true);
    }
    for (let h = 0; h < heads; h++) {
      if (Math.floor(h / nRep) !== kv) continue;
      for (let j = 0; j < headDim; j++) {
        s += lineScore(kind, src, `${p}.q_proj.weight`, h * headDim + j, true);
        s += lineScore(kind, src, `${p}.o_proj.weight`, h * headDim + j, false);
      }
    }
    out.push(s);
  }
  return out;
}

export function mlpChannelScores(kind: Kind, src: Source, layer: number, channels: number): number[] {
  const p = `model.layers.${layer}.mlp`;
  const out: number[] = [];
  for (let c = 0; c < channels; c++) {
    out.push(lineScore(kind, src, `${p}.gate_proj.weight`, c, true) + lineScore(kind, src, `${p}.up_proj.weight`, c, true)
      + lineScore(kind, src, `${p}.down_proj.weight`, c, false));
  }
  return out;
}

export function keep(scores: number[], ratio: number): number[] {
  const k = Math.floor(scores.length * (1 - ratio) + 1e-9);
  const idx = scores.map((_, i) => i);
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

/** Smallest relative gap between the k-th and (k+1)-th highest scores: how robust a kept set is to noise. */
export function boundaryGap(scores: number[], ratio: number): number {
  const k = Math.floor(scores.length * (1 - ratio) + 1e-9);
  const sorted = [...scores].sort((a, b) => b - a);
  if (k <= 0 || k >= sorted.length) return Infinity;
  return (sorted[k - 1]! - sorted[k]!) / Math.abs(sorted[k - 1]!);
}
