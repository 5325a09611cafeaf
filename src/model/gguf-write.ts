// GGUF v3 for llama.cpp's `llama` architecture, written from a lopper model (config, host weights, tokenizer).
// Pruned models keep per-layer widths: head counts and feed-forward lengths become per-layer arrays where layers
// differ, which llama.cpp's loader reads as `llama_hparams::n_head(il)` / `n_ff(il)`. Q/K rows are permuted to the
// interleaved RoPE order llama.cpp's converter writes (permute.ts). 2-D weights are written in the chosen type
// (F32, F16, BF16, or Q8_0 blocks of 32 values with one f16 scale; a row not a multiple of 32 stays F16); 1-D norms
// stay F32, as llama.cpp's converter keeps them. The vocabulary is exported for SentencePiece-style BPE tokenizers
// (byte fallback, "▁" for spaces: LLaMA-1/2, llama2.c) as llama.cpp's `llama` tokenizer model, and for GPT-2
// byte-level BPE (lopper's trained tokenizers) as `gpt2` with its merges.
import { open } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import { float32ToBf16, float32ToF16 } from './dtype.js';
import { permuteRows } from './permute.js';
import { parameterShapes } from './config.js';
import type { LlamaConfig, Tokenizer, WeightMap } from './types.js';

export type GgufDtype = 'f32' | 'f16' | 'bf16' | 'q8_0';

const GGML = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
/** general.file_type (llama_ftype) of each choice. */
const FILE_TYPE: Record<GgufDtype, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };
const ALIGNMENT = 32;

type Value =
  | { type: 'u32'; value: number } | { type: 'i32'; value: number } | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean } | { type: 'string'; value: string }
  | { type: 'i32[]'; value: number[] } | { type: 'f32[]'; value: number[] } | { type: 'string[]'; value: string[] };

/** Token texts and llama.cpp token types (1 normal, 2 unknown, 3 control, 6 byte) in id order, and how to tokenize. */
export interface GgufVocab {
  /** `llama`: SentencePiece, merging by `scores`; `gpt2`: byte-level BPE by `merges`, split by the GPT-2 regex. */
  model: 'llama' | 'gpt2';
  tokens: string[];
  scores?: number[];
  merges?: string[];
  types: number[];
  unknownId?: number;
}

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; byte_fallback?: boolean; unk_token?: string | null };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  normalizer?: unknown;
  pre_tokenizer?: { type?: string; use_regex?: boolean; add_prefix_space?: boolean } | null;
}

/**
 * The vocabulary of a tokenizer.json as llama.cpp wants it: SentencePiece-style BPE (byte fallback, "▁" normalizer;
 * scores fall with the id, as in SentencePiece models, and llama.cpp merges the best-scoring pair) as `llama`, or
 * byte-level BPE with the GPT-2 split (what lopper's `train` makes) as `gpt2` with its merges.
 */
export function ggufVocab(tokenizer: Tokenizer, where: string): GgufVocab {
  const bytes = tokenizer.files().get('tokenizer.json');
  const json = bytes ? JSON.parse(new TextDecoder().decode(bytes)) as TokenizerJson : undefined;
  const model = json?.model;
  const sentencePiece = model?.type === 'BPE' && model.byte_fallback === true && JSON.stringify(json!.normalizer ?? null).includes('▁');
  const byteLevel = model?.type === 'BPE' && !model.byte_fallback && json!.pre_tokenizer?.type === 'ByteLevel'
    && json!.pre_tokenizer.use_regex !== false && !json!.pre_tokenizer.add_prefix_space && json!.normalizer == null;
  if (!model?.vocab || (!sentencePiece && !byteLevel)) {
    throw new LopperError('LP3018', `${where}: the tokenizer is neither SentencePiece-style BPE (byte fallback, "▁") nor GPT-2 byte-level BPE; it cannot be exported to GGUF yet`);
  }
  const n = Math.max(...Object.values(model.vocab), ...(json!.added_tokens ?? []).map((t) => t.id)) + 1;
  const tokens = new Array<string>(n).fill('');
  for (const [text, id] of Object.entries(model.vocab)) tokens[id] = text;
  const special = new Set<number>();
  for (const t of json!.added_tokens ?? []) { tokens[t.id] = t.content; if (t.special) special.add(t.id); }
  const unknownId = model.unk_token ? model.vocab[model.unk_token] : undefined;
  const types = tokens.map((t, id) => (id === unknownId ? 2 : special.has(id) ? 3 : sentencePiece && /^<0x[0-9A-F]{2}>$/.test(t) ? 6 : 1));
  if (byteLevel) {
    const merges = (model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
    return { model: 'gpt2', tokens, merges, types, ...(unknownId !== undefined ? { unknownId } : {}) };
  }
  const firstNormal = types.indexOf(1);
  const scores = types.map((type, id) => (type === 1 ? -(id - firstNormal) : 0));
  return { model: 'llama', tokens, scores, types, unknownId: unknownId ?? 0 };
}

/** A per-layer field: one number when every layer agrees, else the array llama.cpp reads per layer. */
function perLayer(values: number[]): Value {
  return values.every((v) => v === values[0]) ? { type: 'u32', value: values[0]! } : { type: 'i32[]', value: values };
}

/**
 * llama.cpp's `llama` architecture sizes every layer's tensors from layer 0 (3.21.1 refuses a narrower blk.1.attn_q
 * or ffn_gate). Its `deci` architecture (Llama-3.1-Nemotron-51B: a LLaMA with per-layer head counts and FFN widths)
 * builds each layer from its own n_head(il) / n_head_kv(il) / n_ff(il), with the same tensors, RoPE and norms. So a
 * model whose layers differ is written as `deci`, a uniform one as `llama`.
 */
export function ggufArchitecture(config: LlamaConfig): 'llama' | 'deci' {
  const [first, ...rest] = config.layers;
  return rest.every((l) => l.numAttentionHeads === first!.numAttentionHeads && l.numKeyValueHeads === first!.numKeyValueHeads
    && l.intermediateSize === first!.intermediateSize) ? 'llama' : 'deci';
}

function metadata(config: LlamaConfig, vocab: GgufVocab, dtype: GgufDtype, name: string): [string, Value][] {
  const layers = config.layers;
  const arch = ggufArchitecture(config);
  if (layers.some((l) => l.numAttentionHeads === 0 || l.intermediateSize === 0)) {
    const l = layers.findIndex((x) => x.numAttentionHeads === 0 || x.intermediateSize === 0);
    throw new LopperError('LP3018', `layer ${l} has no attention heads or no MLP channels left; lopper does not export such a layer to GGUF (llama.cpp's llama and deci layers were only checked with both)`);
  }
  const md: [string, Value][] = [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.name', { type: 'string', value: name }],
    ['general.file_type', { type: 'u32', value: FILE_TYPE[dtype] }],
    ['general.alignment', { type: 'u32', value: ALIGNMENT }],
    [`${arch}.context_length`, { type: 'u32', value: config.maxPositionEmbeddings }],
    [`${arch}.embedding_length`, { type: 'u32', value: config.hiddenSize }],
    [`${arch}.block_count`, { type: 'u32', value: config.numHiddenLayers }],
    [`${arch}.feed_forward_length`, perLayer(layers.map((l) => l.intermediateSize))],
    [`${arch}.attention.head_count`, perLayer(layers.map((l) => l.numAttentionHeads))],
    [`${arch}.attention.head_count_kv`, perLayer(layers.map((l) => l.numKeyValueHeads))],
    // Pruned heads make hidden / heads differ from the head size: say it, llama.cpp would otherwise divide.
    [`${arch}.attention.key_length`, { type: 'u32', value: config.headDim }],
    [`${arch}.attention.value_length`, { type: 'u32', value: config.headDim }],
    [`${arch}.rope.dimension_count`, { type: 'u32', value: config.headDim }],
    [`${arch}.rope.freq_base`, { type: 'f32', value: config.ropeTheta }],
    [`${arch}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: config.rmsNormEps }],
    [`${arch}.vocab_size`, { type: 'u32', value: config.vocabSize }],
    ['tokenizer.ggml.model', { type: 'string', value: vocab.model }],
    // llama.cpp's name for the GPT-2 split regex, which lopper's byte-level BPE uses.
    ...(vocab.model === 'gpt2' ? [['tokenizer.ggml.pre', { type: 'string', value: 'gpt-2' }] as [string, Value]] : []),
    ['tokenizer.ggml.tokens', { type: 'string[]', value: vocab.tokens }],
    ...(vocab.scores ? [['tokenizer.ggml.scores', { type: 'f32[]', value: vocab.scores }] as [string, Value]] : []),
    ...(vocab.merges ? [['tokenizer.ggml.merges', { type: 'string[]', value: vocab.merges }] as [string, Value]] : []),
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: vocab.types }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: config.bosTokenId }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: config.eosTokenId }],
    ...(vocab.unknownId !== undefined ? [['tokenizer.ggml.unknown_token_id', { type: 'u32', value: vocab.unknownId }] as [string, Value]] : []),
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
  ];
  return md;
}

/** Little-endian byte sink for the header. */
class Bytes {
  private parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void { this.parts.push(b); this.length += b.length; }
  u32(v: number): void { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); this.push(b); }
  i32(v: number): void { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, v, true); this.push(b); }
  u64(v: number | bigint): void { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(v), true); this.push(b); }
  f32(v: number): void { const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true); this.push(b); }
  str(s: string): void { const b = new TextEncoder().encode(s); this.u64(b.length); this.push(b); }
  value(v: Value): void {
    const T = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8 } as const;
    switch (v.type) {
      case 'u32': this.u32(T.u32); this.u32(v.value); break;
      case 'i32': this.u32(T.i32); this.i32(v.value); break;
      case 'f32': this.u32(T.f32); this.f32(v.value); break;
      case 'bool': this.u32(T.bool); this.push(Uint8Array.of(v.value ? 1 : 0)); break;
      case 'string': this.u32(T.string); this.str(v.value); break;
      case 'i32[]': this.u32(9); this.u32(T.i32); this.u64(v.value.length); for (const x of v.value) this.i32(x); break;
      case 'f32[]': this.u32(9); this.u32(T.f32); this.u64(v.value.length); for (const x of v.value) this.f32(x); break;
      case 'string[]': this.u32(9); this.u32(T.string); this.u64(v.value.length); for (const x of v.value) this.str(x); break;
    }
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

/** One tensor's data in ggml `type`. */
function encode(data: Float32Array, type: number): Uint8Array {
  if (type === GGML.F32) return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  if (type === GGML.F16) return new Uint8Array(float32ToF16(data).buffer);
  if (type === GGML.BF16) return new Uint8Array(float32ToBf16(data).buffer);
  // Q8_0 (ggml-quants.c quantize_row_q8_0_ref): per 32 values, d = max|x| / 127, q = round(x / d), stored f16 d + int8 q.
  const blocks = data.length / 32;
  const out = new Uint8Array(blocks * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(data[b * 32 + i]!));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 34, float32ToF16(Float32Array.of(d))[0]!, true);
    for (let i = 0; i < 32; i++) {
      const x = Math.fround(data[b * 32 + i]! * id);
      dv.setInt8(b * 34 + 2 + i, Math.sign(x) * Math.round(Math.abs(x))); // roundf: halves away from zero
    }
  }
  return out;
}

function tensorType(shape: number[], dtype: GgufDtype): number {
  if (shape.length < 2 || dtype === 'f32') return GGML.F32;
  if (dtype === 'f16') return GGML.F16;
  if (dtype === 'bf16') return GGML.BF16;
  return shape[shape.length - 1]! % 32 === 0 ? GGML.Q8_0 : GGML.F16;
}

/** llama.cpp's name of each HF parameter, and whether its rows are permuted to interleaved RoPE order. */
function ggufNames(config: LlamaConfig): Map<string, { name: string; permute: boolean }> {
  const m = new Map<string, { name: string; permute: boolean }>();
  m.set('model.embed_tokens.weight', { name: 'token_embd.weight', permute: false });
  const parts: [string, string, boolean][] = [
    ['input_layernorm', 'attn_norm', false], ['self_attn.q_proj', 'attn_q', true], ['self_attn.k_proj', 'attn_k', true],
    ['self_attn.v_proj', 'attn_v', false], ['self_attn.o_proj', 'attn_output', false], ['post_attention_layernorm', 'ffn_norm', false],
    ['mlp.gate_proj', 'ffn_gate', false], ['mlp.up_proj', 'ffn_up', false], ['mlp.down_proj', 'ffn_down', false],
  ];
  for (let l = 0; l < config.numHiddenLayers; l++) {
    for (const [hf, gguf, permute] of parts) m.set(`model.layers.${l}.${hf}.weight`, { name: `blk.${l}.${gguf}.weight`, permute });
  }
  m.set('model.norm.weight', { name: 'output_norm.weight', permute: false });
  if (!config.tieWordEmbeddings) m.set('lm_head.weight', { name: 'output.weight', permute: false });
  return m;
}

function byteLength(shape: number[], type: number): number {
  const n = shape.reduce((a, d) => a * d, 1);
  return type === GGML.F32 ? 4 * n : type === GGML.Q8_0 ? (n / 32) * 34 : 2 * n;
}

/** Visits every parameter once, as host float32, in any order (a weight map, or a checkpoint read tensor by tensor). */
export type WeightStream = (visit: (hfName: string, data: Float32Array) => Promise<void>) => Promise<void>;

export function weightMapStream(weights: WeightMap): WeightStream {
  return async (visit) => { for (const [name, t] of weights) await visit(name, t.data); };
}

export interface GgufExport {
  config: LlamaConfig;
  /** The parameters: a host weight map, or a stream that holds one tensor at a time. */
  weights: WeightMap | WeightStream;
  tokenizer: Tokenizer;
  /** general.name */
  name: string;
}

/**
 * Writes `model` to `path` (GGUF v3, ggml types by `dtype`). The layout (every tensor's type and offset) follows from
 * the config alone, so the header is written first and each tensor goes to its place as it arrives: the host holds
 * one tensor at a time when `weights` is a stream.
 */
export async function writeGguf(path: string, model: GgufExport, dtype: GgufDtype): Promise<void> {
  const { config } = model;
  if (config.attentionBias || config.mlpBias) throw new LopperError('LP3018', `${path}: models with attention or MLP biases are not exported to GGUF yet`);
  if (config.ropeScaling) throw new LopperError('LP3018', `${path}: rope scaling is not exported to GGUF yet`);
  const vocab = ggufVocab(model.tokenizer, path);
  const md = metadata(config, vocab, dtype, model.name);
  const shapes = parameterShapes(config);
  const names = ggufNames(config);
  const layout = new Map<string, { name: string; shape: number[]; type: number; offset: number; permute: boolean; written: boolean }>();
  let offset = 0;
  for (const [hf, { name, permute }] of names) {
    const shape = shapes.get(hf)!;
    const type = tensorType(shape, dtype);
    layout.set(hf, { name, shape, type, offset, permute, written: false });
    offset += Math.ceil(byteLength(shape, type) / ALIGNMENT) * ALIGNMENT;
  }
  const head = new Bytes();
  head.u32(0x46554747);
  head.u32(3);
  head.u64(layout.size);
  head.u64(md.length);
  for (const [key, value] of md) { head.str(key); head.value(value); }
  for (const t of layout.values()) {
    head.str(t.name);
    head.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) head.u64(d);
    head.u32(t.type);
    head.u64(t.offset);
  }
  const header = head.concat();
  const dataStart = Math.ceil(header.length / ALIGNMENT) * ALIGNMENT;
  const fh = await open(path, 'w').catch((e: NodeJS.ErrnoException) => {
    throw new LopperError('LP3016', `${path}: cannot write (${e.code ?? e.message})`);
  });
  try {
    await fh.write(header, 0, header.length, 0);
    const stream = model.weights instanceof Map ? weightMapStream(model.weights) : model.weights;
    await stream(async (hf, data) => {
      const t = layout.get(hf);
      if (!t) return; // not a GGUF tensor (a tied lm_head copy)
      if (data.length !== t.shape.reduce((a, d) => a * d, 1)) {
        throw new LopperError('LP3008', `${path}: parameter "${hf}" has ${data.length} values, the config implies shape ${JSON.stringify(t.shape)}`);
      }
      const rows = t.permute ? permuteRows(data, t.shape[0]!, t.shape[1]!, config.headDim) : data;
      const bytes = encode(rows, t.type);
      await fh.write(bytes, 0, bytes.length, dataStart + t.offset);
      t.written = true;
    });
    const missing = [...layout].find(([, t]) => !t.written);
    if (missing) throw new LopperError('LP3009', `parameter "${missing[0]}" is missing from the model to export`);
    await fh.truncate(dataStart + offset);
  } finally {
    await fh.close();
  }
}
