// GGUF (llama.cpp) LLaMA checkpoints with F32/F16/BF16 tensors. The header is parsed here with bounds checks on every
// read (a count or length that cannot fit in the rest of the file is an error, never an allocation).
// GGUF dims are listed fastest-first (ne0 = in), so a [out, in] matrix has dims [in, out] and row-major [out][in]
// data. llama.cpp's converters permute q/k rows to interleaved RoPE order; they are un-permuted to HF order.
// The vocabulary (tokenizer.ggml.tokens/scores, model "llama") becomes a SentencePiece-BPE tokenizer.
import { open, type FileHandle } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import { halfToFloat } from './safetensors.js';
import { unpermuteRows } from './permute.js';
import { Llama2cTokenizer } from './llama2c-tokenizer.js';
import { hfTokenizerFromBytes } from './tokenizer.js';
import { tokenizerJson } from '../train/bpe.js';
import type { LlamaConfig, Tokenizer, WeightMap } from './types.js';

type GgufValue = number | bigint | boolean | string | GgufValue[];

interface TensorInfo { name: string; dims: number[]; type: number; offset: bigint }

/** Bytes per block of `block` values. */
const GGML_TYPES: Record<number, { name: string; bytes: number; block: number }> = {
  0: { name: 'F32', bytes: 4, block: 1 }, 1: { name: 'F16', bytes: 2, block: 1 }, 30: { name: 'BF16', bytes: 2, block: 1 },
  8: { name: 'Q8_0', bytes: 34, block: 32 },
};

function fail(path: string, message: string): never {
  throw new LopperError('LP3015', `${path}: ${message}`);
}

/** Sequential reader over the start of a file, growing its buffer on demand, bounded by the file size. */
class HeaderReader {
  private buf = new Uint8Array(0);
  private base = 0;
  pos = 0;
  constructor(private readonly fh: FileHandle, private readonly path: string, readonly size: number) {}
  private async ensure(n: number): Promise<void> {
    if (this.pos + n > this.size) fail(this.path, `unexpected end of file in the header (at byte ${this.pos}, need ${n} more)`);
    if (this.pos + n <= this.base + this.buf.length) return;
    const want = Math.min(this.size - this.pos, Math.max(n, 1 << 20, this.buf.length * 2));
    const next = new Uint8Array(want);
    const { bytesRead } = await this.fh.read(next, 0, want, this.pos);
    if (bytesRead < n) fail(this.path, 'short read in the header');
    this.buf = next.subarray(0, bytesRead);
    this.base = this.pos;
  }
  private view(n: number): DataView {
    const o = this.pos - this.base;
    this.pos += n;
    return new DataView(this.buf.buffer, this.buf.byteOffset + o, n);
  }
  async u8(): Promise<number> { await this.ensure(1); return this.view(1).getUint8(0); }
  async u32(): Promise<number> { await this.ensure(4); return this.view(4).getUint32(0, true); }
  async u64(): Promise<bigint> { await this.ensure(8); return this.view(8).getBigUint64(0, true); }
  /** A u64 count that must allow `minBytesEach` bytes per item in the rest of the file. */
  async count(what: string, minBytesEach: number): Promise<number> {
    const n = await this.u64();
    if (n > BigInt(Math.floor((this.size - this.pos) / Math.max(1, minBytesEach)))) fail(this.path, `${what} count ${n} cannot fit in the file`);
    return Number(n);
  }
  async str(): Promise<string> {
    const n = await this.count('string length', 1);
    await this.ensure(n);
    const o = this.pos - this.base;
    this.pos += n;
    return new TextDecoder().decode(this.buf.subarray(o, o + n));
  }
  async value(type: number): Promise<GgufValue> {
    switch (type) {
      case 0: return this.u8();
      case 1: { await this.ensure(1); return this.view(1).getInt8(0); }
      case 2: { await this.ensure(2); return this.view(2).getUint16(0, true); }
      case 3: { await this.ensure(2); return this.view(2).getInt16(0, true); }
      case 4: return this.u32();
      case 5: { await this.ensure(4); return this.view(4).getInt32(0, true); }
      case 6: { await this.ensure(4); return this.view(4).getFloat32(0, true); }
      case 7: return (await this.u8()) !== 0;
      case 8: return this.str();
      case 9: {
        const t = await this.u32();
        const sizes: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 10: 8, 11: 8, 12: 8, 9: 12 };
        if (sizes[t] === undefined) fail(this.path, `unknown array element type ${t}`);
        const n = await this.count('array', sizes[t]!);
        const out: GgufValue[] = [];
        for (let i = 0; i < n; i++) out.push(await this.value(t));
        return out;
      }
      case 10: return this.u64();
      case 11: { await this.ensure(8); return this.view(8).getBigInt64(0, true); }
      case 12: { await this.ensure(8); return this.view(8).getFloat64(0, true); }
      default: fail(this.path, `unknown metadata value type ${type}`);
    }
  }
}

export interface GgufFile {
  metadata: Map<string, GgufValue>;
  tensors: TensorInfo[];
  dataStart: number;
}

export async function readGgufHeader(fh: FileHandle, path: string): Promise<GgufFile> {
  const size = (await fh.stat()).size;
  const r = new HeaderReader(fh, path, size);
  const magic = await r.u32();
  if (magic !== 0x46554747) fail(path, 'not a GGUF file (bad magic)');
  const version = await r.u32();
  if (version < 2 || version > 3) fail(path, `GGUF version ${version} is not supported (2 or 3)`);
  const nTensors = await r.count('tensor', 24);
  const nKv = await r.count('metadata', 12);
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = await r.str();
    metadata.set(key, await r.value(await r.u32()));
  }
  const tensors: TensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = await r.str();
    const nd = await r.u32();
    if (nd > 4) fail(path, `tensor "${name}" has ${nd} dimensions`);
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) {
      const v = await r.u64();
      if (v > BigInt(size)) fail(path, `tensor "${name}" dimension ${v} is larger than the file`);
      dims.push(Number(v));
    }
    const type = await r.u32();
    const offset = await r.u64();
    tensors.push({ name, dims, type, offset });
  }
  const alignment = Number(metadata.get('general.alignment') ?? 32);
  if (!(alignment > 0)) fail(path, `invalid general.alignment ${alignment}`);
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  return { metadata, tensors, dataStart };
}

function num(path: string, md: Map<string, GgufValue>, key: string, fallback?: number): number {
  const v = md.get(key);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    fail(path, `metadata "${key}" is missing`);
  }
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) fail(path, `metadata "${key}" is not a number`);
  return n;
}

function perLayer(path: string, md: Map<string, GgufValue>, key: string, layers: number): number[] {
  const v = md.get(key);
  if (Array.isArray(v)) {
    if (v.length !== layers) fail(path, `metadata "${key}" has ${v.length} entries for ${layers} layers`);
    return v.map((x, l) => {
      const n = typeof x === 'bigint' ? Number(x) : x;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) fail(path, `metadata "${key}"[${l}] is not a count`);
      return n;
    });
  }
  return new Array<number>(layers).fill(num(path, md, key));
}

export async function readGguf(path: string): Promise<{ config: LlamaConfig; weights: WeightMap; tokenizer: Tokenizer | null }> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new LopperError('LP3001', `${path}: cannot open (${e.code ?? e.message})`);
  });
  try {
    const size = (await fh.stat()).size;
    const { metadata: md, tensors, dataStart } = await readGgufHeader(fh, path);
    const arch = md.get('general.architecture');
    // `deci` is llama.cpp's LLaMA with per-layer widths (lopper writes heterogeneous pruned models as it).
    if (arch !== 'llama' && arch !== 'deci') fail(path, `architecture "${String(arch)}" is not supported (llama, deci)`);
    const dim = num(path, md, `${arch}.embedding_length`);
    const L = num(path, md, `${arch}.block_count`);
    // Per-layer widths (pruned models): a number for every layer, or an array of one per layer.
    const hiddens = perLayer(path, md, `${arch}.feed_forward_length`, L);
    const heads = perLayer(path, md, `${arch}.attention.head_count`, L);
    const kvs = md.has(`${arch}.attention.head_count_kv`) ? perLayer(path, md, `${arch}.attention.head_count_kv`, L) : heads;
    const hd = num(path, md, `${arch}.attention.key_length`, num(path, md, `${arch}.rope.dimension_count`, dim / heads[0]!));
    heads.forEach((h, l) => {
      if (!Number.isInteger(hd) || hd <= 0 || kvs[l]! <= 0 || h % kvs[l]! !== 0) fail(path, `inconsistent attention metadata in layer ${l} (heads ${h}, kv ${kvs[l]}, head dim ${hd})`);
    });
    const byName = new Map(tensors.map((t) => [t.name, t]));
    const read = async (name: string, shape: number[]): Promise<Float32Array> => {
      const t = byName.get(name);
      if (!t) throw new LopperError('LP3009', `${path}: tensor "${name}" is missing`);
      const want = [...shape].reverse();
      if (t.dims.length !== want.length || t.dims.some((d, i) => d !== want[i])) {
        throw new LopperError('LP3008', `${path}: tensor "${name}" has GGUF dims ${JSON.stringify(t.dims)} but the metadata implies ${JSON.stringify(want)}`);
      }
      const ty = GGML_TYPES[t.type];
      if (!ty) throw new LopperError('LP3015', `${path}: tensor "${name}" has ggml type ${t.type}; only F32, F16, BF16 and Q8_0 are supported (dequantize first)`);
      const n = shape.reduce((a, d) => a * d, 1);
      if (n % ty.block !== 0 || shape[shape.length - 1]! % ty.block !== 0) fail(path, `tensor "${name}" rows are not whole ${ty.name} blocks`);
      const byteLength = (n / ty.block) * ty.bytes;
      const start = BigInt(dataStart) + t.offset;
      if (start + BigInt(byteLength) > BigInt(size)) {
        throw new LopperError('LP3015', `${path}: tensor "${name}" data (${byteLength} bytes at ${start}) runs past the end of the file (${size} bytes; truncated?)`);
      }
      const bytes = new Uint8Array(byteLength);
      let done = 0;
      while (done < bytes.length) {
        const { bytesRead } = await fh.read(bytes, done, Math.min(bytes.length - done, 1 << 30), Number(start) + done);
        if (bytesRead === 0) fail(path, `unexpected end of file in tensor "${name}"`);
        done += bytesRead;
      }
      if (ty.name === 'F32') return new Float32Array(bytes.buffer);
      const out = new Float32Array(n);
      const dv = new DataView(bytes.buffer);
      if (ty.name === 'Q8_0') {
        // Blocks of an f16 scale d and 32 int8 q: x = d·q.
        for (let b = 0; b < n / 32; b++) {
          const d = halfToFloat(dv.getUint16(b * 34, true));
          for (let i = 0; i < 32; i++) out[b * 32 + i] = d * dv.getInt8(b * 34 + 2 + i);
        }
        return out;
      }
      const u = new Uint32Array(1), f = new Float32Array(u.buffer);
      for (let i = 0; i < n; i++) {
        const h = dv.getUint16(2 * i, true);
        if (ty.name === 'F16') out[i] = halfToFloat(h);
        else { u[0] = h << 16; out[i] = f[0]!; }
      }
      return out;
    };
    const embInfo = byName.get('token_embd.weight');
    if (!embInfo) throw new LopperError('LP3009', `${path}: tensor "token_embd.weight" is missing`);
    const vocab = embInfo.dims[1] ?? 0;
    const weights: WeightMap = new Map();
    weights.set('model.embed_tokens.weight', { shape: [vocab, dim], data: await read('token_embd.weight', [vocab, dim]) });
    for (let l = 0; l < L; l++) {
      const b = `blk.${l}`, pre = `model.layers.${l}`;
      const q = heads[l]! * hd, kv = kvs[l]! * hd, hidden = hiddens[l]!;
      weights.set(`${pre}.input_layernorm.weight`, { shape: [dim], data: await read(`${b}.attn_norm.weight`, [dim]) });
      weights.set(`${pre}.self_attn.q_proj.weight`, { shape: [q, dim], data: unpermuteRows(await read(`${b}.attn_q.weight`, [q, dim]), q, dim, hd) });
      weights.set(`${pre}.self_attn.k_proj.weight`, { shape: [kv, dim], data: unpermuteRows(await read(`${b}.attn_k.weight`, [kv, dim]), kv, dim, hd) });
      weights.set(`${pre}.self_attn.v_proj.weight`, { shape: [kv, dim], data: await read(`${b}.attn_v.weight`, [kv, dim]) });
      weights.set(`${pre}.self_attn.o_proj.weight`, { shape: [dim, q], data: await read(`${b}.attn_output.weight`, [dim, q]) });
      weights.set(`${pre}.post_attention_layernorm.weight`, { shape: [dim], data: await read(`${b}.ffn_norm.weight`, [dim]) });
      weights.set(`${pre}.mlp.gate_proj.weight`, { shape: [hidden, dim], data: await read(`${b}.ffn_gate.weight`, [hidden, dim]) });
      weights.set(`${pre}.mlp.up_proj.weight`, { shape: [hidden, dim], data: await read(`${b}.ffn_up.weight`, [hidden, dim]) });
      weights.set(`${pre}.mlp.down_proj.weight`, { shape: [dim, hidden], data: await read(`${b}.ffn_down.weight`, [dim, hidden]) });
    }
    weights.set('model.norm.weight', { shape: [dim], data: await read('output_norm.weight', [dim]) });
    // An output.weight equal to the embedding (llama2c conversions store a copy) means tied embeddings.
    let tied = true;
    if (byName.has('output.weight')) {
      const out = await read('output.weight', [vocab, dim]);
      const emb = weights.get('model.embed_tokens.weight')!.data;
      const same = new Uint32Array(out.buffer, out.byteOffset, out.length).every((v, i) => v === new Uint32Array(emb.buffer, emb.byteOffset, emb.length)[i]);
      if (!same) { tied = false; weights.set('lm_head.weight', { shape: [vocab, dim], data: out }); }
    }
    const ropeScale = md.get(`${arch}.rope.scaling.type`);
    if (ropeScale !== undefined && ropeScale !== 'none') fail(path, `rope scaling "${String(ropeScale)}" in GGUF metadata is not supported`);
    const config: LlamaConfig = {
      hiddenSize: dim, vocabSize: vocab, headDim: hd, numHiddenLayers: L,
      layers: Array.from({ length: L }, (_, l) => ({ numAttentionHeads: heads[l]!, numKeyValueHeads: kvs[l]!, intermediateSize: hiddens[l]! })),
      rmsNormEps: num(path, md, `${arch}.attention.layer_norm_rms_epsilon`, 1e-5),
      ropeTheta: num(path, md, `${arch}.rope.freq_base`, 10000),
      maxPositionEmbeddings: num(path, md, `${arch}.context_length`, 2048),
      tieWordEmbeddings: tied, attentionBias: false, mlpBias: false,
      bosTokenId: num(path, md, 'tokenizer.ggml.bos_token_id', 1),
      eosTokenId: num(path, md, 'tokenizer.ggml.eos_token_id', 2),
      extra: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu' },
    };
    return { config, weights, tokenizer: ggufTokenizer(path, md, config) };
  } finally {
    await fh.close();
  }
}

/** A GPT-2 byte-level BPE vocabulary (tokens, merges, control tokens) as the tokenizer.json lopper's BPE writes. */
function gpt2Tokenizer(path: string, md: Map<string, GgufValue>): Tokenizer {
  const tokens = md.get('tokenizer.ggml.tokens');
  const merges = md.get('tokenizer.ggml.merges');
  const types = md.get('tokenizer.ggml.token_type');
  const pre = md.get('tokenizer.ggml.pre');
  if (!Array.isArray(tokens) || !Array.isArray(merges)) throw new LopperError('LP3012', `${path}: a gpt2 vocabulary needs tokenizer.ggml.tokens and tokenizer.ggml.merges`);
  if (pre !== undefined && pre !== 'gpt-2' && pre !== 'default') {
    throw new LopperError('LP3012', `${path}: tokenizer.ggml.pre "${String(pre)}" is not read yet (only the GPT-2 split)`);
  }
  const pairs = merges.map((m) => String(m).split(' ') as [string, string]);
  const special = Array.isArray(types) ? types.flatMap((t, id) => (Number(t) === 3 ? [id] : [])) : [];
  const json = tokenizerJson({ tokens: tokens.map(String), merges: pairs }, special);
  return hfTokenizerFromBytes(new TextEncoder().encode(JSON.stringify(json)), undefined, path);
}

function ggufTokenizer(path: string, md: Map<string, GgufValue>, config: LlamaConfig): Tokenizer | null {
  const model = md.get('tokenizer.ggml.model');
  const tokens = md.get('tokenizer.ggml.tokens');
  const scores = md.get('tokenizer.ggml.scores');
  if (model === undefined || tokens === undefined) return null;
  if (model === 'gpt2') return gpt2Tokenizer(path, md);
  if (model !== 'llama') {
    throw new LopperError('LP3012', `${path}: tokenizer model "${String(model)}" is not supported (SentencePiece "llama", GPT-2 "gpt2"); pass a tokenizer.json with \`tokenizer:\``);
  }
  if (!Array.isArray(tokens) || !Array.isArray(scores) || tokens.length !== scores.length) {
    throw new LopperError('LP3012', `${path}: tokenizer.ggml.tokens/scores are missing or differ in length`);
  }
  const pieces = tokens.map((t) => String(t).replace(/\u2581/g, ' '));
  return new Llama2cTokenizer({ pieces, scores: scores.map(Number), bosId: config.bosTokenId, eosId: config.eosTokenId });
}
