// Q/K row order. Meta/llama2.c/GGUF checkpoints apply RoPE to interleaved pairs (x[2i], x[2i+1]); Hugging Face
// LLaMA rotates halves (x[i], x[i+D/2]). transformers' convert_llama_weights_to_hf permutes each head's rows:
// hf = w.view(heads, D/2, 2, in).transpose(1, 2).reshape(heads·D, in), i.e. hf row j·D/2 + i = meta row 2i + j.

/** Interleaved (Meta/GGUF) rows → HF rotate_half rows, per head of `headDim` rows. */
export function unpermuteRows(data: Float32Array, rows: number, cols: number, headDim: number): Float32Array {
  const out = new Float32Array(data.length);
  const half = headDim / 2;
  for (let h = 0; h < rows / headDim; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * headDim + 2 * i + j) * cols;
        const dst = (h * headDim + j * half + i) * cols;
        out.set(data.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** HF rows → interleaved rows (inverse of unpermuteRows). */
export function permuteRows(data: Float32Array, rows: number, cols: number, headDim: number): Float32Array {
  const out = new Float32Array(data.length);
  const half = headDim / 2;
  for (let h = 0; h < rows / headDim; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const dst = (h * headDim + 2 * i + j) * cols;
        const src = (h * headDim + j * half + i) * cols;
        out.set(data.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}
