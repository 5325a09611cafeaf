// llama2.c checkpoints (karpathy/llama2.c). Legacy v0: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size — negative means an unshared classifier —, seq_len), then float32: token_embedding [V, dim],
// rms_att [L, dim], wq [L, q, dim], wk [L, kv, dim], wv [L, kv, dim], wo [L, dim, q], rms_ffn [L, dim],
// w1 (gate) [L, hidden, dim], w2 (down) [L, dim, hidden], w3 (up) [L, hidden, dim], rms_final [dim],
// freq_cis_real/imag [seq_len, head/2] each, wcls [V, dim] if unshared.
// Version 1 (magic "ak42", 256-byte header, float32): norms first (rms_att, rms_ffn, rms_final), then
// embeddings, wq, wk, wv, wo, w1, w2, w3, wcls if unshared. Version 2 (int8) is not supported.
// Weights are PyTorch [out, in] row-major; q/k rows are interleaved-RoPE order and are un-permuted to HF order.
import { open } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import { unpermuteRows } from './permute.js';
import type { LlamaConfig, WeightMap } from './types.js';

const MAGIC_V1 = 0x616b3432;

function fail(path: string, message: string): never {
  throw new LopperError('LP3014', `${path}: ${message}`);
}

export async function readLlama2c(path: string): Promise<{ config: LlamaConfig; weights: WeightMap }> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new LopperError('LP3001', `${path}: cannot open (${e.code ?? e.message})`);
  });
  try {
    const size = (await fh.stat()).size;
    if (size < 28) fail(path, `${size} bytes, too short for a llama2.c header`);
    const head = new Uint8Array(Math.min(size, 256));
    await fh.read(head, 0, head.length, 0);
    const dv = new DataView(head.buffer);
    let version = 0;
    let p = 0;
    if (dv.getUint32(0, true) === MAGIC_V1) {
      version = dv.getInt32(4, true);
      if (version !== 1) fail(path, `llama2.c checkpoint version ${version} is not supported (only legacy v0 and float32 v1)`);
      if (size < 256) fail(path, 'truncated header');
      p = 8;
    }
    const h = Array.from({ length: 7 }, (_, i) => dv.getInt32(p + 4 * i, true));
    const [dim, hidden, nLayers, nHeads, nKv, vocabRaw, seqLen] = h as [number, number, number, number, number, number, number];
    let shared = vocabRaw > 0;
    if (version === 1) shared = head[p + 28] === 1;
    const vocab = Math.abs(vocabRaw);
    const limit = 1 << 20;
    if (!(dim > 0 && dim < limit && hidden > 0 && hidden < limit && nLayers > 0 && nLayers < 4096 && nHeads > 0 && nKv > 0 && vocab > 0 && vocab < 1 << 24 && seqLen > 0)
      || dim % nHeads !== 0 || nHeads % nKv !== 0) {
      fail(path, `implausible header ${JSON.stringify(h)}; not a llama2.c checkpoint`);
    }
    const hd = dim / nHeads;
    const q = nHeads * hd, kv = nKv * hd;
    const L = nLayers;
    const params = vocab * dim + L * (2 * dim + q * dim + 2 * kv * dim + dim * q + 3 * hidden * dim) + dim;
    const freq = seqLen * hd; // real + imag
    const cls = shared ? 0 : vocab * dim;
    const headerBytes = version === 1 ? 256 : 28;
    const expected = headerBytes + 4 * (params + (version === 0 ? freq : 0) + cls);
    if (size !== expected) {
      fail(path, `file has ${size} bytes but the header (dim ${dim}, hidden ${hidden}, layers ${L}, heads ${nHeads}/${nKv}, vocab ${vocab}, seq_len ${seqLen}) implies ${expected}`
        + (size < expected ? ' (truncated?)' : ''));
    }
    let off = headerBytes;
    const take = async (n: number): Promise<Float32Array> => {
      const out = new Float32Array(n);
      const bytes = new Uint8Array(out.buffer);
      let done = 0;
      while (done < bytes.length) {
        const { bytesRead } = await fh.read(bytes, done, Math.min(bytes.length - done, 1 << 30), off + done);
        if (bytesRead === 0) fail(path, 'unexpected end of file');
        done += bytesRead;
      }
      off += 4 * n;
      return out;
    };
    const perLayer = async (rows: number, cols: number): Promise<Float32Array[]> => {
      const out: Float32Array[] = [];
      for (let l = 0; l < L; l++) out.push(await take(rows * cols));
      return out;
    };
    let emb: Float32Array, rmsAtt: Float32Array[], rmsFfn: Float32Array[], rmsFinal: Float32Array;
    if (version === 0) {
      emb = await take(vocab * dim);
      rmsAtt = await perLayer(1, dim);
    } else {
      rmsAtt = await perLayer(1, dim);
      rmsFfn = await perLayer(1, dim);
      rmsFinal = await take(dim);
      emb = await take(vocab * dim);
    }
    const wq = await perLayer(q, dim), wk = await perLayer(kv, dim), wv = await perLayer(kv, dim), wo = await perLayer(dim, q);
    if (version === 0) rmsFfn = await perLayer(1, dim);
    const w1 = await perLayer(hidden, dim), w2 = await perLayer(dim, hidden), w3 = await perLayer(hidden, dim);
    if (version === 0) {
      rmsFinal = await take(dim);
      off += 4 * freq;
    }
    const wcls = shared ? null : await take(vocab * dim);
    const weights: WeightMap = new Map();
    weights.set('model.embed_tokens.weight', { shape: [vocab, dim], data: emb });
    for (let l = 0; l < L; l++) {
      const pre = `model.layers.${l}`;
      weights.set(`${pre}.input_layernorm.weight`, { shape: [dim], data: rmsAtt[l]! });
      weights.set(`${pre}.self_attn.q_proj.weight`, { shape: [q, dim], data: unpermuteRows(wq[l]!, q, dim, hd) });
      weights.set(`${pre}.self_attn.k_proj.weight`, { shape: [kv, dim], data: unpermuteRows(wk[l]!, kv, dim, hd) });
      weights.set(`${pre}.self_attn.v_proj.weight`, { shape: [kv, dim], data: wv[l]! });
      weights.set(`${pre}.self_attn.o_proj.weight`, { shape: [dim, q], data: wo[l]! });
      weights.set(`${pre}.post_attention_layernorm.weight`, { shape: [dim], data: rmsFfn![l]! });
      weights.set(`${pre}.mlp.gate_proj.weight`, { shape: [hidden, dim], data: w1[l]! });
      weights.set(`${pre}.mlp.up_proj.weight`, { shape: [hidden, dim], data: w3[l]! });
      weights.set(`${pre}.mlp.down_proj.weight`, { shape: [dim, hidden], data: w2[l]! });
    }
    weights.set('model.norm.weight', { shape: [dim], data: rmsFinal! });
    if (wcls) weights.set('lm_head.weight', { shape: [vocab, dim], data: wcls });
    const config: LlamaConfig = {
      hiddenSize: dim, vocabSize: vocab, headDim: hd, numHiddenLayers: L,
      layers: Array.from({ length: L }, () => ({ numAttentionHeads: nHeads, numKeyValueHeads: nKv, intermediateSize: hidden })),
      rmsNormEps: 1e-5, ropeTheta: 10000, maxPositionEmbeddings: seqLen,
      tieWordEmbeddings: shared, attentionBias: false, mlpBias: false, bosTokenId: 1, eosTokenId: 2,
      extra: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu' },
    };
    return { config, weights };
  } finally {
    await fh.close();
  }
}
