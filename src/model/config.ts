// Hugging Face config.json <-> LlamaConfig, parameter names/shapes implied by a config, and parameter counts.
// Per-layer widths: a pruned model's config.json carries num_attention_heads_per_layer,
// num_key_value_heads_per_layer and intermediate_size_per_layer (lists, one entry per layer) next to the plain
// scalar fields; a uniform model gets a plain LLaMA config.
import { LopperError } from '../errors/lopper-error.js';
import type { LayerShape, LlamaConfig, RopeScaling } from './types.js';

/** config.json fields that readHfConfig interprets; everything else is kept in `extra` and written back as is. */
const KNOWN_FIELDS = new Set([
  'hidden_size', 'vocab_size', 'head_dim', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'intermediate_size', 'num_attention_heads_per_layer', 'num_key_value_heads_per_layer', 'intermediate_size_per_layer',
  'rms_norm_eps', 'rope_theta', 'rope_scaling', 'max_position_embeddings', 'tie_word_embeddings', 'attention_bias',
  'mlp_bias', 'bos_token_id', 'eos_token_id',
]);
const SUPPORTED_MODEL_TYPES = new Set(['llama', 'qwen2', 'mistral']);

function bad(file: string, message: string): never {
  throw new LopperError('LP3003', `${file}: ${message}`);
}

function posInt(file: string, obj: Record<string, unknown>, key: string, fallback?: number, allowZero = false): number {
  const v = obj[key] ?? fallback;
  if (!Number.isSafeInteger(v) || (v as number) < (allowZero ? 0 : 1)) bad(file, `"${key}" must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(obj[key])}`);
  return v as number;
}

function perLayer(file: string, obj: Record<string, unknown>, key: string, n: number, scalar: number): number[] {
  const v = obj[key];
  if (v === undefined || v === null) return Array.from({ length: n }, () => scalar);
  if (!Array.isArray(v) || v.length !== n || !v.every((x) => Number.isSafeInteger(x) && x >= 0)) {
    bad(file, `"${key}" must be a list of ${n} non-negative integers (one per layer), got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

function firstId(v: unknown, fallback: number): number {
  if (Array.isArray(v)) return typeof v[0] === 'number' ? v[0] : fallback;
  return typeof v === 'number' ? v : fallback;
}

function readRopeScaling(file: string, v: unknown): RopeScaling | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object') bad(file, `"rope_scaling" must be an object or null`);
  const r = v as Record<string, unknown>;
  const type = (r.rope_type ?? r.type ?? 'default') as string;
  if (type !== 'default' && type !== 'llama3' && type !== 'linear') {
    bad(file, `rope_scaling type "${type}" is not supported (supported: default, linear, llama3)`);
  }
  const out: RopeScaling = { ropeType: type };
  if (typeof r.factor === 'number') out.factor = r.factor;
  if (typeof r.low_freq_factor === 'number') out.lowFreqFactor = r.low_freq_factor;
  if (typeof r.high_freq_factor === 'number') out.highFreqFactor = r.high_freq_factor;
  if (typeof r.original_max_position_embeddings === 'number') out.originalMaxPositionEmbeddings = r.original_max_position_embeddings;
  if (type === 'llama3' && (out.factor === undefined || out.lowFreqFactor === undefined || out.highFreqFactor === undefined || out.originalMaxPositionEmbeddings === undefined)) {
    bad(file, `llama3 rope_scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings`);
  }
  if (type === 'linear' && out.factor === undefined) bad(file, `linear rope_scaling needs factor`);
  return out;
}

/** Parses a Hugging Face config.json object. `file` names the source in error messages. */
export function readHfConfig(json: unknown, file = 'config.json'): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(file, 'not a JSON object');
  const c = json as Record<string, unknown>;
  const modelType = c.model_type;
  if (modelType !== undefined && !SUPPORTED_MODEL_TYPES.has(modelType as string)) {
    bad(file, `model_type "${String(modelType)}" is not supported (supported: ${[...SUPPORTED_MODEL_TYPES].join(', ')})`);
  }
  if (c.use_sliding_window === true) bad(file, 'sliding-window attention (use_sliding_window: true) is not supported');
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') bad(file, `hidden_act "${String(act)}" is not supported (LLaMA-family models use silu)`);
  const hiddenSize = posInt(file, c, 'hidden_size');
  const vocabSize = posInt(file, c, 'vocab_size');
  const numHiddenLayers = posInt(file, c, 'num_hidden_layers', undefined, true);
  const heads = posInt(file, c, 'num_attention_heads');
  const kvHeads = posInt(file, c, 'num_key_value_heads', heads);
  const headDim = c.head_dim === undefined || c.head_dim === null ? hiddenSize / heads : posInt(file, c, 'head_dim');
  if (!Number.isSafeInteger(headDim)) bad(file, `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${heads}; set head_dim`);
  const inter = posInt(file, c, 'intermediate_size');
  const hs = perLayer(file, c, 'num_attention_heads_per_layer', numHiddenLayers, heads);
  const kvs = perLayer(file, c, 'num_key_value_heads_per_layer', numHiddenLayers, kvHeads);
  const is = perLayer(file, c, 'intermediate_size_per_layer', numHiddenLayers, inter);
  const layers: LayerShape[] = [];
  for (let i = 0; i < numHiddenLayers; i++) {
    const h = hs[i]!, kv = kvs[i]!;
    if ((kv === 0) !== (h === 0) || (kv > 0 && h % kv !== 0)) {
      bad(file, `layer ${i}: ${h} attention heads are not a multiple of ${kv} key/value heads`);
    }
    layers.push({ numAttentionHeads: h, numKeyValueHeads: kv, intermediateSize: is[i]! });
  }
  const eps = c.rms_norm_eps ?? 1e-6;
  // transformers ≥ 5 writes `rope_parameters: {rope_theta, rope_type, factor, …}` instead of rope_theta/rope_scaling;
  // it is kept in `extra` (written back as is) and read here when the legacy fields are absent.
  const rp = typeof c.rope_parameters === 'object' && c.rope_parameters !== null ? c.rope_parameters as Record<string, unknown> : undefined;
  const theta = c.rope_theta ?? rp?.rope_theta ?? 10000;
  if (typeof eps !== 'number' || !(eps > 0)) bad(file, `"rms_norm_eps" must be a positive number`);
  if (typeof theta !== 'number' || !(theta > 0)) bad(file, `"rope_theta" must be a positive number`);
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c)) if (!KNOWN_FIELDS.has(k)) extra[k] = v;
  // A list of EOS ids (Llama-3 instruct) is kept and written back; eosTokenId is its first entry.
  if (Array.isArray(c.eos_token_id)) extra.eos_token_id = c.eos_token_id;
  const isQwen2 = modelType === 'qwen2';
  const config: LlamaConfig = {
    hiddenSize, vocabSize, headDim, numHiddenLayers, layers,
    rmsNormEps: eps, ropeTheta: theta,
    maxPositionEmbeddings: posInt(file, c, 'max_position_embeddings', 2048),
    // transformers' LlamaConfig defaults tie_word_embeddings to false.
    tieWordEmbeddings: c.tie_word_embeddings === undefined ? false : c.tie_word_embeddings === true,
    // Qwen2 always has q/k/v biases (and no o_proj bias); see attentionBiasNames().
    attentionBias: isQwen2 ? true : c.attention_bias === true,
    mlpBias: c.mlp_bias === true,
    bosTokenId: firstId(c.bos_token_id, 1),
    eosTokenId: firstId(c.eos_token_id, 2),
    extra,
  };
  const rs = readRopeScaling(file, c.rope_scaling ?? (rp && rp.rope_type !== undefined && rp.rope_type !== 'default' ? rp : undefined));
  if (rs) config.ropeScaling = rs;
  return config;
}

/** True when every layer has the same widths. */
export function isUniform(config: LlamaConfig): boolean {
  const l0 = config.layers[0];
  return !l0 || config.layers.every((l) => l.numAttentionHeads === l0.numAttentionHeads && l.numKeyValueHeads === l0.numKeyValueHeads && l.intermediateSize === l0.intermediateSize);
}

/** The config.json object for a config (plain LLaMA when uniform; per-layer lists added when layers differ). */
export function toHfConfig(config: LlamaConfig): Record<string, unknown> {
  const extra = { ...(config.extra ?? {}) };
  const l0 = config.layers[0] ?? { numAttentionHeads: 1, numKeyValueHeads: 1, intermediateSize: 1 };
  // Scalars describe the widest layer so that tools which ignore the lists at least see valid LLaMA numbers.
  const heads = Math.max(1, ...config.layers.map((l) => l.numAttentionHeads));
  const kv = Math.max(1, ...config.layers.map((l) => l.numKeyValueHeads));
  const inter = Math.max(1, ...config.layers.map((l) => l.intermediateSize));
  const out: Record<string, unknown> = {
    architectures: extra.architectures ?? ['LlamaForCausalLM'],
    model_type: extra.model_type ?? 'llama',
    ...extra,
    hidden_size: config.hiddenSize,
    intermediate_size: isUniform(config) ? l0.intermediateSize : inter,
    num_hidden_layers: config.numHiddenLayers,
    num_attention_heads: isUniform(config) ? l0.numAttentionHeads : heads,
    num_key_value_heads: isUniform(config) ? l0.numKeyValueHeads : kv,
    head_dim: config.headDim,
    vocab_size: config.vocabSize,
    max_position_embeddings: config.maxPositionEmbeddings,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: config.ropeScaling ? ropeScalingJson(config.ropeScaling) : null,
    tie_word_embeddings: config.tieWordEmbeddings,
    bos_token_id: config.bosTokenId,
    eos_token_id: Array.isArray(extra.eos_token_id) && extra.eos_token_id[0] === config.eosTokenId ? extra.eos_token_id : config.eosTokenId,
  };
  // lopper writes float32 weights whatever the source dtype was.
  if ('torch_dtype' in extra) out.torch_dtype = 'float32';
  if ('dtype' in extra) out.dtype = 'float32';
  if (out.model_type !== 'qwen2') out.attention_bias = config.attentionBias;
  out.mlp_bias = config.mlpBias;
  if (!isUniform(config)) {
    out.num_attention_heads_per_layer = config.layers.map((l) => l.numAttentionHeads);
    out.num_key_value_heads_per_layer = config.layers.map((l) => l.numKeyValueHeads);
    out.intermediate_size_per_layer = config.layers.map((l) => l.intermediateSize);
  }
  return out;
}

function ropeScalingJson(r: RopeScaling): Record<string, unknown> {
  const o: Record<string, unknown> = { rope_type: r.ropeType };
  if (r.factor !== undefined) o.factor = r.factor;
  if (r.lowFreqFactor !== undefined) o.low_freq_factor = r.lowFreqFactor;
  if (r.highFreqFactor !== undefined) o.high_freq_factor = r.highFreqFactor;
  if (r.originalMaxPositionEmbeddings !== undefined) o.original_max_position_embeddings = r.originalMaxPositionEmbeddings;
  return o;
}

/** Which attention projections carry a bias: all four for LLaMA attention_bias, q/k/v only for Qwen2. */
export function attentionBiasProjections(config: LlamaConfig): string[] {
  if (!config.attentionBias) return [];
  return config.extra?.model_type === 'qwen2' ? ['q_proj', 'k_proj', 'v_proj'] : ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
}

/** Every parameter the config implies, by Hugging Face name, with its shape, in a canonical order. */
export function parameterShapes(config: LlamaConfig): Map<string, number[]> {
  const H = config.hiddenSize, D = config.headDim;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [config.vocabSize, H]);
  const biased = new Set(attentionBiasProjections(config));
  config.layers.forEach((l, i) => {
    const p = `model.layers.${i}`;
    const q = l.numAttentionHeads * D, kv = l.numKeyValueHeads * D, I = l.intermediateSize;
    m.set(`${p}.input_layernorm.weight`, [H]);
    const attn: [string, number, number][] = [['q_proj', q, H], ['k_proj', kv, H], ['v_proj', kv, H], ['o_proj', H, q]];
    for (const [n, out, inp] of attn) {
      m.set(`${p}.self_attn.${n}.weight`, [out, inp]);
      if (biased.has(n)) m.set(`${p}.self_attn.${n}.bias`, [out]);
    }
    m.set(`${p}.post_attention_layernorm.weight`, [H]);
    const mlp: [string, number, number][] = [['gate_proj', I, H], ['up_proj', I, H], ['down_proj', H, I]];
    for (const [n, out, inp] of mlp) {
      m.set(`${p}.mlp.${n}.weight`, [out, inp]);
      if (config.mlpBias) m.set(`${p}.mlp.${n}.bias`, [out]);
    }
  });
  m.set('model.norm.weight', [H]);
  if (!config.tieWordEmbeddings) m.set('lm_head.weight', [config.vocabSize, H]);
  return m;
}

/** Number of parameters (tied embeddings counted once). */
export function countParameters(config: LlamaConfig): number {
  let n = 0;
  for (const shape of parameterShapes(config).values()) n += shape.reduce((a, d) => a * d, 1);
  return n;
}
