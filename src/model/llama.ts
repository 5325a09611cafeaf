// A LLaMA-family decoder in tfjs, numerically matching Hugging Face LlamaForCausalLM (eager attention):
// RMSNorm, HF rotary embeddings (rotate_half), grouped-query attention, SwiGLU MLP, tied or untied LM head,
// optional biases (LLaMA attention_bias / mlp_bias, Qwen2 q/k/v biases), causal mask. Every layer has its own
// widths (pruned models are heterogeneous); a layer with 0 heads or 0 MLP channels contributes only its biases.
// The LM head is applied in row chunks so that no [tokens × vocab] tensor exceeds LOGITS_CHUNK_ELEMENTS
// (WebGPU binds at most 2 GiB per tensor; lavapipe 128 MiB). Only ops with tfjs gradients are used
// (slice/concat/gather/matMul/softmax/logSumExp; no StridedSlice, Einsum, GatherNd, TopK).
//
// Split weights: a tensor larger than the backend's per-tensor limit (WebGPU: the device's
// maxStorageBufferBindingSize; other backends: none; LlamaModel.maxTensorBytes / fromWeights' maxTensorBytes
// override it) cannot live in one tf.Variable. `model.embed_tokens.weight` and `lm_head.weight` (vocab × hidden:
// Llama-3-8B's 128,256 × 4,096 float32 is 2,101,346,304 bytes, just under the H200's 2,147,483,644; wider or larger
// vocabularies exceed it, and lavapipe's 128 MiB any vocab·hidden over 33.5 M) are then kept as row chunks (vocab
// ranges): the embedding gathers in every chunk
// with the ids shifted into the chunk's range and clamped, masks out the rows of ids outside it and sums the chunks
// (GatherV2 + Multiply + Add: differentiable, exact); the LM head multiplies by every chunk and concatenates the
// logits along the vocab axis. Any other weight over the limit raises LP8007.
import * as tf from '@tensorflow/tfjs-core';
import { LopperError } from '../errors/lopper-error.js';
import { attentionBiasProjections, parameterShapes } from './config.js';
import { registerCpuKernels } from '../backend/cpu-kernels.js';
import { fusedCausalSoftmax, fusedOpsActive, fusedRmsNorm, fusedRopeHeads, fusedSwiglu } from '../backend/kernels/fused-ops.js';
import { registerGradients } from './gradients.js';
import { ropeTables } from './rope.js';
import type { HostTensor, LlamaConfig, WeightMap } from './types.js';
import { fillNormal, mulberry32 } from '../seeded-random.js';

export type LinearHook = (name: string /* e.g. 'model.layers.3.self_attn.q_proj' */, x: tf.Tensor, base: (x: tf.Tensor) => tf.Tensor) => tf.Tensor;

export interface ForwardOptions {
  /** Wraps every linear projection (LoRA adapters, activation capture). `x` is [tokens, in]. */
  linear?: LinearHook;
  training?: boolean;
  /** Several sequences packed into one row (shared prefix, then branches); default: one causal sequence per row. */
  layout?: TokenLayout;
  /**
   * Sees every decoder layer's input and output residual stream, both [B·T, H] (forward statistics: ShortGPT's block
   * influence). Called inside the layer's tidy scope: tensors it keeps must be tf.keep()'d, and it must not dispose
   * what it is given.
   */
  layerObserver?: LayerObserver;
}

export type LayerObserver = (layer: number, input: tf.Tensor2D, output: tf.Tensor2D) => void;

/**
 * Where each id of a [B, T] batch sits, both [B·T] row-major: its rotary position, and its segment. An id sees the
 * ids before it in its row that are in its own segment or in segment 0 (the shared prefix), so branches packed after
 * a common prefix are scored as if each ran alone after it.
 */
export interface TokenLayout {
  positions: Int32Array;
  segments: Int32Array;
}

/** Largest [rows × vocab] block the LM head materializes at once: 2^24 float32 = 64 MiB. */
export const LOGITS_CHUNK_ELEMENTS = 1 << 24;
/** Dawn's maxStorageBufferBindingSize on NVIDIA (reference/webgpu.md §0.5). */
const MAX_BINDING_BYTES = 2_147_483_644;
/** Weights that may be split into row chunks when they exceed the per-tensor limit. */
const SPLITTABLE = new Set(['model.embed_tokens.weight', 'lm_head.weight']);
/** Masked attention scores: exp() of this underflows to exactly 0, as with HF's finfo.min. */
const MASK_VALUE = -1e9;

interface Rope { rot: tf.Tensor2D; cos: tf.Tensor; sin: tf.Tensor; perToken: boolean }

/** The additive [B, 1, T, T] attention mask of a packed layout: 0 where query q may see key k (TokenLayout), else MASK_VALUE. */
function layoutMask(layout: TokenLayout, B: number, T: number): Float32Array {
  const m = new Float32Array(B * T * T).fill(MASK_VALUE);
  const seg = layout.segments;
  for (let b = 0; b < B; b++) {
    for (let q = 0; q < T; q++) {
      const sq = seg[b * T + q]!;
      const row = (b * T + q) * T;
      for (let k = 0; k <= q; k++) {
        const sk = seg[b * T + k]!;
        if (sk === 0 || sk === sq) m[row + k] = 0;
      }
    }
  }
  return m;
}

registerGradients();
registerCpuKernels();

let modelCounter = 0;

/** Whether a gradient tape is recording (inside tf.grad / variableGrads): then intermediates must live to the end. */
function tapeRecording(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}

function numel(shape: number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/**
 * Largest tensor (bytes) the active tfjs backend can use in one kernel: on WebGPU the device's
 * maxStorageBufferBindingSize (tfjs binds whole tensors and computes garbage past it); elsewhere no limit (null).
 */
export function backendMaxTensorBytes(): number | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const device = (tf.backend() as unknown as { device?: { limits?: { maxStorageBufferBindingSize?: number } } }).device;
  const limit = device?.limits?.maxStorageBufferBindingSize;
  return typeof limit === 'number' && limit > 0 ? limit : MAX_BINDING_BYTES;
}

function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${n} B`;
}

/** Key in `LlamaModel.params` of row chunk `k` of a split weight. */
export function chunkKey(name: string, k: number): string {
  return `${name}#${k}`;
}

/** Checks a weight map against the shapes the config implies (LP3008/LP3009/LP3010). */
export function checkWeights(config: LlamaConfig, weights: WeightMap, source = 'weights'): void {
  const expected = parameterShapes(config);
  for (const [name, shape] of expected) {
    const t = weights.get(name);
    if (!t) throw new LopperError('LP3009', `${source}: parameter "${name}" (shape ${JSON.stringify(shape)}) is missing`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new LopperError('LP3008', `${source}: tensor "${name}" has shape ${JSON.stringify(t.shape)} but the config implies ${JSON.stringify(shape)}`);
    }
    if (t.data.length !== numel(shape)) {
      throw new LopperError('LP3008', `${source}: tensor "${name}" holds ${t.data.length} values, shape ${JSON.stringify(shape)} needs ${numel(shape)}`);
    }
  }
  for (const name of weights.keys()) {
    if (!expected.has(name)) throw new LopperError('LP3010', `${source}: tensor "${name}" is not a parameter of this config`);
  }
}

export interface FromWeightsOptions {
  trainable?: boolean;
  /** Per-tensor byte limit above which embed_tokens / lm_head are split (default: LlamaModel.maxTensorBytes, then the backend's). */
  maxTensorBytes?: number | null;
}

export class LlamaModel {
  /**
   * Overrides the per-tensor byte limit of every model created afterwards (tests; null = ask the backend:
   * WebGPU's maxStorageBufferBindingSize, no limit elsewhere). `fromWeights(…, { maxTensorBytes })` wins over it.
   */
  static maxTensorBytes: number | null = null;

  readonly config: LlamaConfig;
  /**
   * The model's tf.Variables, one per device tensor, in config order. An unsplit parameter is keyed by its HF name;
   * a split one (see `splits`) has no entry under its HF name but one per row chunk, keyed `<hf name>#<k>`
   * (`chunkKey`), chunk k holding rows [k·c, min((k+1)·c, rows)) of the HF tensor (c = `splits.get(name).chunkRows`).
   * Optimizers may update these variables in place (the trainer does). `weights()` and `gradients()` speak HF names
   * and concatenate the chunks; `variablesOf(name)` gives the variables behind an HF name.
   */
  readonly params: Map<string, tf.Variable>;
  /** Split parameters by HF name: rows per chunk (all but the last chunk) and the chunk keys in `params`. */
  readonly splits: ReadonlyMap<string, { rows: number; chunkRows: number; keys: readonly string[] }>;
  /** The per-tensor byte limit this model was built for (null: none). */
  readonly maxTensorBytes: number | null;
  private readonly attnBias: Set<string>;
  /** Largest [rows × vocab] logits block materialized by tokenLogProbs/loss (tests lower it to exercise chunking). */
  logitsChunkElements = LOGITS_CHUNK_ELEMENTS;

  private constructor(config: LlamaConfig, params: Map<string, tf.Variable>,
    splits: Map<string, { rows: number; chunkRows: number; keys: string[] }>, maxTensorBytes: number | null) {
    this.config = config;
    this.params = params;
    this.splits = splits;
    this.maxTensorBytes = maxTensorBytes;
    this.attnBias = new Set(attentionBiasProjections(config));
  }

  /**
   * Uploads host weights to tf.Variables. `params` is keyed by HF names; the tfjs variable names get a per-model
   * prefix (`lopper<N>/<key>`) because tfjs requires globally unique variable names. A weight larger than the
   * per-tensor limit is split into row chunks if it is embed_tokens or lm_head, else refused with LP8007.
   */
  static fromWeights(config: LlamaConfig, weights: WeightMap, opts: FromWeightsOptions = {}): LlamaModel {
    checkWeights(config, weights);
    const limit = opts.maxTensorBytes !== undefined ? opts.maxTensorBytes : (LlamaModel.maxTensorBytes ?? backendMaxTensorBytes());
    const plan = new Map<string, { rows: number; chunkRows: number; keys: string[] }>();
    if (limit !== null) {
      for (const name of parameterShapes(config).keys()) {
        const t = weights.get(name)!;
        const bytes = numel(t.shape) * 4;
        if (bytes <= limit) continue;
        const where = tf.getBackend() === 'webgpu' ? 'a WebGPU shader on this device can bind' : 'the per-tensor limit allows';
        const [rows, cols] = t.shape as [number, number];
        if (!SPLITTABLE.has(name) || t.shape.length !== 2 || cols * 4 > limit) {
          throw new LopperError('LP8007', `parameter "${name}" (${JSON.stringify(t.shape)}, ${formatBytes(bytes)}) is larger than the ${formatBytes(limit)} ${where}; only model.embed_tokens.weight and lm_head.weight are split into row chunks`,
            { hint: 'Use runtime.backend: cpu / wasm / tensorflow for this model, or a device with a larger maxStorageBufferBindingSize.' });
        }
        const n = Math.ceil(rows / Math.floor(limit / (cols * 4)));
        const chunkRows = Math.ceil(rows / n);
        const count = Math.ceil(rows / chunkRows);
        plan.set(name, { rows, chunkRows, keys: Array.from({ length: count }, (_, k) => chunkKey(name, k)) });
      }
    }
    const id = ++modelCounter;
    const params = new Map<string, tf.Variable>();
    const upload = (key: string, data: Float32Array, shape: number[]): void => {
      params.set(key, tf.tidy(() => tf.variable(tf.tensor(data, shape, 'float32'), opts.trainable ?? true, `lopper${id}/${key}`)));
    };
    try {
      for (const name of parameterShapes(config).keys()) {
        const t = weights.get(name)!;
        const split = plan.get(name);
        if (!split) { upload(name, t.data, t.shape); continue; }
        const cols = t.shape[1]!;
        split.keys.forEach((key, k) => {
          const start = k * split.chunkRows, n = Math.min(split.chunkRows, split.rows - start);
          upload(key, t.data.subarray(start * cols, (start + n) * cols), [n, cols]);
        });
      }
    } catch (e) {
      for (const v of params.values()) v.dispose();
      throw e;
    }
    return new LlamaModel(config, params, plan, limit);
  }

  /**
   * A model over tensors already on the device, by HF name: one tensor per parameter, or the row chunks of a split
   * one. The variables share the tensors' data (no copy); the caller may dispose its tensors afterwards. A whole
   * tensor over the per-tensor limit is split like fromWeights splits host weights (row slices on the device).
   */
  static fromDeviceTensors(config: LlamaConfig, tensors: Map<string, tf.Tensor[]>, opts: FromWeightsOptions = {}): LlamaModel {
    const limit = opts.maxTensorBytes !== undefined ? opts.maxTensorBytes : (LlamaModel.maxTensorBytes ?? backendMaxTensorBytes());
    const expected = parameterShapes(config);
    const plan = new Map<string, { rows: number; chunkRows: number; keys: string[] }>();
    const id = ++modelCounter;
    const params = new Map<string, tf.Variable>();
    const variable = (key: string, t: tf.Tensor) => params.set(key, tf.variable(t, opts.trainable ?? true, `lopper${id}/${key}`));
    try {
      for (const [name, shape] of expected) {
        let parts = tensors.get(name);
        if (!parts || parts.length === 0) throw new LopperError('LP3009', `device weights: parameter "${name}" is missing`);
        const rows = parts.reduce((a, t) => a + t.shape[0]!, 0);
        const tail = parts[0]!.shape.slice(1);
        if (rows !== shape[0] || tail.length !== shape.length - 1 || tail.some((d, i) => d !== shape[i + 1])) {
          throw new LopperError('LP3008', `device weights: "${name}" has shape ${JSON.stringify([rows, ...tail])} but the config implies ${JSON.stringify(shape)}`);
        }
        if (parts.length === 1 && limit !== null && numel(shape) * 4 > limit && SPLITTABLE.has(name) && shape.length === 2) {
          const cols = shape[1]!;
          const chunkRows = Math.ceil(rows / Math.ceil(rows / Math.floor(limit / (cols * 4))));
          parts = Array.from({ length: Math.ceil(rows / chunkRows) }, (_, k) => tf.slice(parts![0]!, [k * chunkRows, 0], [Math.min(chunkRows, rows - k * chunkRows), cols]));
        }
        if (parts.length === 1) { variable(name, parts[0]!); continue; }
        const keys = parts.map((_, k) => chunkKey(name, k));
        plan.set(name, { rows, chunkRows: parts[0]!.shape[0]!, keys });
        parts.forEach((t, k) => variable(keys[k]!, t));
        if (parts !== tensors.get(name)) for (const t of parts) t.dispose();
      }
    } catch (e) {
      for (const v of params.values()) v.dispose();
      throw e;
    }
    return new LlamaModel(config, params, plan, limit);
  }

  /** The device tensors behind every HF parameter name (row chunks of split ones), shared, not copied: callers must not dispose them. */
  deviceTensors(): Map<string, tf.Tensor[]> {
    return new Map(this.parameterNames().map((n) => [n, this.variablesOf(n)]));
  }

  private p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(this.splits.has(name) ? `internal: parameter ${name} is split; use variablesOf()` : `internal: no parameter ${name}`);
    return v;
  }

  /** The variables behind an HF parameter name (its row chunks, in order, when split) or behind a `params` key. */
  variablesOf(name: string): tf.Variable[] {
    const split = this.splits.get(name);
    return split ? split.keys.map((k) => this.p(k)) : [this.p(name)];
  }

  /** HF parameter names in config order. */
  parameterNames(): string[] {
    return [...parameterShapes(this.config).keys()];
  }

  /** Embedding rows of flat int32 ids [n] → [n, H]; over row chunks when embed_tokens is split. */
  private embed(ids: tf.Tensor1D): tf.Tensor2D {
    const name = 'model.embed_tokens.weight';
    const split = this.splits.get(name);
    if (!split) return tf.gather(this.p(name), ids) as tf.Tensor2D;
    let out: tf.Tensor2D | null = null;
    for (let k = 0; k < split.keys.length; k++) {
      const key = split.keys[k]!;
      const start = k * split.chunkRows, n = Math.min(split.chunkRows, split.rows - start);
      const local = tf.sub(ids, tf.scalar(start, 'int32'));
      const inside = tf.logicalAnd(tf.greaterEqual(local, tf.scalar(0, 'int32')), tf.less(local, tf.scalar(n, 'int32')));
      const idx = tf.where(inside, local, tf.zerosLike(local));
      const rows = tf.mul(tf.gather(this.p(key), idx), tf.expandDims(tf.cast(inside, 'float32'), 1)) as tf.Tensor2D;
      out = out === null ? rows : tf.add(out, rows) as tf.Tensor2D;
    }
    return out!;
  }

  private linear(prefix: string, x: tf.Tensor, hasBias: boolean, opts: ForwardOptions): tf.Tensor {
    const w = this.p(`${prefix}.weight`);
    const base = (input: tf.Tensor): tf.Tensor => {
      const y = tf.matMul(input as tf.Tensor2D, w as tf.Tensor2D, false, true);
      return hasBias ? tf.add(y, this.p(`${prefix}.bias`)) : y;
    };
    return opts.linear ? opts.linear(prefix, x, base) : base(x);
  }

  private rmsNorm(x: tf.Tensor, weight: string): tf.Tensor {
    return rmsNorm(x as tf.Tensor2D, this.p(weight) as tf.Tensor1D, this.config.rmsNormEps);
  }

  /**
   * x [B, T, n, D] → x·cos + rotate_half(x)·sin with rotate_half(x) = cat(-x2, x1) computed as x·R for a fixed
   * signed permutation R (exact: every output is one input times ±1): one matMul instead of slice/neg/concat,
   * whose gradients (pad/split) are slow on the cpu backend. cos/sin are [T, 1, D].
   */
  private rope(x: tf.Tensor, rot: tf.Tensor2D, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor4D {
    const [B, T, n, D] = x.shape as [number, number, number, number];
    const rotated = tf.reshape(tf.matMul(tf.reshape(x, [B * T * n, D]) as tf.Tensor2D, rot), [B, T, n, D]);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
  }

  /** Rotary embedding of a projection x [B·T, n·D] as attention heads [B, n, T, D]. */
  private ropeHeads(x: tf.Tensor, B: number, T: number, n: number, rope: Rope): tf.Tensor4D {
    const D = this.config.headDim;
    // Packed rows carry per-id positions ([B, T, 1, D] tables); the fused kernel reads one [T, 1, D] table.
    if (fusedOpsActive() && !rope.perToken) return fusedRopeHeads(x, rope.cos, rope.sin, [B, T, n, D]);
    return tf.transpose(this.rope(tf.reshape(x, [B, T, n, D]), rope.rot, rope.cos, rope.sin), [0, 2, 1, 3]);
  }

  private attention(i: number, x: tf.Tensor2D, B: number, T: number, rope: Rope, masks: Map<number, tf.Tensor>, opts: ForwardOptions, keepMasks = false): tf.Tensor2D {
    const { numAttentionHeads: nh, numKeyValueHeads: kv } = this.config.layers[i]!;
    const D = this.config.headDim;
    const p = `model.layers.${i}.self_attn`;
    if (nh === 0) {
      // A fully pruned attention block: only o_proj's bias (if any) remains.
      const H = this.config.hiddenSize;
      return (this.attnBias.has('o_proj') ? tf.add(tf.zeros([B * T, H]), this.p(`${p}.o_proj.bias`)) : tf.zeros([B * T, H])) as tf.Tensor2D;
    }
    const rep = nh / kv;
    const q = this.linear(`${p}.q_proj`, x, this.attnBias.has('q_proj'), opts);
    const k = this.linear(`${p}.k_proj`, x, this.attnBias.has('k_proj'), opts);
    const v = this.linear(`${p}.v_proj`, x, this.attnBias.has('v_proj'), opts);
    const q4 = this.ropeHeads(q, B, T, nh, rope);
    const k4 = this.ropeHeads(k, B, T, kv, rope);
    const v4 = tf.transpose(tf.reshape(v, [B, T, kv, D]), [0, 2, 1, 3]);
    // GQA without materializing repeated K/V: query head h uses KV head h // rep, and heads of one KV group are
    // contiguous, so [B, nh, T, D] → [B, kv, rep·T, D] groups each KV head's queries along the row axis.
    const qg = tf.reshape(q4, [B, kv, rep * T, D]);
    const scores = tf.matMul(qg, k4, false, true);
    const probs = opts.layout
      ? this.layoutSoftmax(scores, 1 / Math.sqrt(D), B, nh, T, opts.layout, masks, keepMasks)
      : fusedOpsActive()
        ? fusedCausalSoftmax(scores, 1 / Math.sqrt(D), T)
        : this.causalSoftmax(scores, 1 / Math.sqrt(D), rep, T, masks, keepMasks);
    const o = tf.matMul(probs, v4); // [B, kv, rep·T, D]
    const merged = tf.reshape(tf.transpose(tf.reshape(o, [B, nh, T, D]), [0, 2, 1, 3]), [B * T, nh * D]);
    return this.linear(`${p}.o_proj`, merged, this.attnBias.has('o_proj'), opts) as tf.Tensor2D;
  }

  /** softmax(scores·scale + causal mask) over the last axis of [B, kv, rep·T, T] scores (row r sees columns ≤ r mod T). */
  private causalSoftmax(scores: tf.Tensor, scale: number, rep: number, T: number, masks: Map<number, tf.Tensor>, keep: boolean): tf.Tensor {
    let mask = masks.get(rep);
    if (!mask) {
      const m = new Float32Array(rep * T * T);
      for (let r = 0; r < rep * T; r++) for (let c = (r % T) + 1; c < T; c++) m[r * T + c] = MASK_VALUE;
      mask = tf.tensor2d(m, [rep * T, T]);
      // Made inside one layer's scope and reused by the next layers; the forward disposes it.
      if (keep) tf.keep(mask);
      masks.set(rep, mask);
    }
    return tf.softmax(tf.add(tf.mul(scores, scale), mask), -1);
  }

  /** As causalSoftmax for packed rows: [B, kv, rep·T, T] scores are viewed as [B, nh, T, T] under a [B, 1, T, T] mask. */
  private layoutSoftmax(scores: tf.Tensor, scale: number, B: number, nh: number, T: number, layout: TokenLayout, masks: Map<number, tf.Tensor>, keep: boolean): tf.Tensor {
    let mask = masks.get(-1);
    if (!mask) {
      mask = tf.tensor4d(layoutMask(layout, B, T), [B, 1, T, T]);
      if (keep) tf.keep(mask);
      masks.set(-1, mask);
    }
    const heads = tf.reshape(scores, [B, nh, T, T]);
    return tf.reshape(tf.softmax(tf.add(tf.mul(heads, scale), mask), -1), scores.shape);
  }

  private mlp(i: number, x: tf.Tensor2D, opts: ForwardOptions): tf.Tensor2D {
    const p = `model.layers.${i}.mlp`;
    const bias = this.config.mlpBias;
    if (this.config.layers[i]!.intermediateSize === 0) {
      const z = tf.zeros(x.shape);
      return (bias ? tf.add(z, this.p(`${p}.down_proj.bias`)) : z) as tf.Tensor2D;
    }
    const gate = this.linear(`${p}.gate_proj`, x, bias, opts);
    const up = this.linear(`${p}.up_proj`, x, bias, opts);
    const act = swiglu(gate as tf.Tensor2D, up as tf.Tensor2D);
    return this.linear(`${p}.down_proj`, act, bias, opts) as tf.Tensor2D;
  }

  /** Rotary tables for a [B, T] batch: [T, 1, D] for plain rows, [B, T, 1, D] gathered by position for packed ones. */
  private ropeFor(B: number, T: number, layout: TokenLayout | undefined): Rope {
    const D = this.config.headDim, h = D / 2;
    const r = new Float32Array(D * D);
    for (let j = 0; j < h; j++) { r[(j + h) * D + j] = -1; r[j * D + j + h] = 1; }
    const rot = tf.tensor2d(r, [D, D]);
    if (!layout) {
      const { cos, sin } = ropeTables(this.config, T);
      return { rot, cos: tf.tensor3d(cos, [T, 1, D]), sin: tf.tensor3d(sin, [T, 1, D]), perToken: false };
    }
    if (layout.positions.length !== B * T || layout.segments.length !== B * T) {
      throw new Error(`token layout of ${layout.positions.length} positions / ${layout.segments.length} segments for ids [${B}, ${T}]`);
    }
    const table = ropeTables(this.config, Math.max(...layout.positions) + 1);
    const cos = new Float32Array(B * T * D), sin = new Float32Array(B * T * D);
    layout.positions.forEach((p, j) => {
      cos.set(table.cos.subarray(p * D, (p + 1) * D), j * D);
      sin.set(table.sin.subarray(p * D, (p + 1) * D), j * D);
    });
    return { rot, cos: tf.tensor4d(cos, [B, T, 1, D]), sin: tf.tensor4d(sin, [B, T, 1, D]), perToken: true };
  }

  /** Final hidden states after the last RMSNorm, [B·T, H]. Call inside tf.tidy. */
  hidden(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor2D {
    const [B, T] = ids.shape;
    if (ids.dtype !== 'int32') throw new Error('LlamaModel: ids must be an int32 tensor');
    const rope = this.ropeFor(B, T, opts.layout);
    const masks = new Map<number, tf.Tensor>();
    // Without a gradient tape nothing needs a layer's intermediates once it is done: freeing them layer by layer keeps
    // a forward's GPU working set at one layer's activations. Held to the end of an outer tidy, a 7B forward's
    // thousands of intermediates (GBs) overflow the bounded buffer pool, which is then emptied, and every batch
    // allocates its buffers anew (measured on the H200: most of the wall time of a perplexity batch).
    const inference = !tapeRecording();
    let x = this.embed(tf.reshape(ids, [B * T]) as tf.Tensor1D);
    try {
      for (let i = 0; i < this.config.numHiddenLayers; i++) {
        const pre = `model.layers.${i}`;
        const input = x;
        const layer = (): tf.Tensor2D => {
          const h = tf.add(input, this.attention(i, this.rmsNorm(input, `${pre}.input_layernorm.weight`) as tf.Tensor2D, B, T, rope, masks, opts, inference));
          const out = tf.add(h, this.mlp(i, this.rmsNorm(h, `${pre}.post_attention_layernorm.weight`) as tf.Tensor2D, opts)) as tf.Tensor2D;
          opts.layerObserver?.(i, input, out);
          return out;
        };
        x = inference ? tf.tidy(layer) : layer();
        if (inference) input.dispose();
      }
    } finally {
      // Kept masks (inference) outlive the layer scopes that made them.
      if (inference) for (const m of masks.values()) m.dispose();
    }
    return this.rmsNorm(x, 'model.norm.weight') as tf.Tensor2D;
  }

  /** The LM head's weight: one variable, or its row (vocab) chunks when split. */
  private headWeights(): tf.Variable[] {
    return this.variablesOf(this.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
  }

  private headLogits(h: tf.Tensor2D, opts: ForwardOptions): tf.Tensor2D {
    const ws = this.headWeights();
    const base = (x: tf.Tensor): tf.Tensor => ws.length === 1
      ? tf.matMul(x as tf.Tensor2D, ws[0] as tf.Tensor2D, false, true)
      : tf.concat(ws.map((w) => tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D, false, true)), 1);
    return (opts.linear ? opts.linear('lm_head', h, base) : base(h)) as tf.Tensor2D;
  }

  /** Largest float32 element count of one tensor (logits blocks). */
  private maxElements(): number {
    return Math.floor((this.maxTensorBytes ?? MAX_BINDING_BYTES) / 4);
  }

  /** Logits [B, T, V]. Materializes the whole tensor: for small inputs (generation, tests). */
  logits(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
    const [B, T] = ids.shape;
    if (B * T * this.config.vocabSize > this.maxElements()) {
      throw new Error(`logits(): [${B}, ${T}, ${this.config.vocabSize}] would exceed ${formatBytes(this.maxElements() * 4)}; use tokenLogProbs()/loss(), which chunk the LM head`);
    }
    return tf.tidy(() => tf.reshape(this.headLogits(this.hidden(ids, opts), opts), [B, T, this.config.vocabSize]) as tf.Tensor3D);
  }

  /** log p(ids[:, t+1] | ids[:, ≤t]) for t = 0..T-2, [B, T-1]; the LM head runs over row chunks. */
  tokenLogProbs(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor2D {
    const [B, T] = ids.shape;
    if (T < 2) throw new Error('tokenLogProbs needs at least 2 positions');
    return tf.tidy(() => {
      // Every position is scored against the next id (the last one against a dummy 0) and the last column is
      // dropped afterwards: slicing the [B, T] result is cheaper than slicing (and padding back, in the gradient)
      // the [B, T, H] hidden states.
      const targets = tf.concat([tf.slice(ids, [0, 1], [B, T - 1]), tf.zeros([B, 1], 'int32')], 1) as tf.Tensor2D;
      return tf.slice(this.targetLogProbs(ids, targets, opts), [0, 0], [B, T - 1]) as tf.Tensor2D;
    });
  }

  /** log p(targets[b, t] | what ids[b, t] sees under the layout), [B, T]; the LM head runs over row chunks. */
  targetLogProbs(ids: tf.Tensor2D, targets: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor2D {
    const [B, T] = ids.shape;
    return tf.tidy(() => {
      const V = this.config.vocabSize;
      const h = this.hidden(ids, opts);
      const H = this.config.hiddenSize;
      const flatTargets = tf.reshape(targets, [B * T]) as tf.Tensor1D;
      const rows = B * T;
      const chunk = Math.max(1, Math.floor(Math.min(this.logitsChunkElements, this.maxElements()) / V));
      const parts: tf.Tensor1D[] = [];
      for (let start = 0; start < rows; start += chunk) {
        const n = Math.min(chunk, rows - start);
        const hc = rows <= chunk ? h : tf.slice(h, [start, 0], [n, H]);
        const tc = rows <= chunk ? flatTargets : tf.slice(flatTargets, [start], [n]);
        const logits = this.headLogits(hc, opts);
        parts.push(targetLogProbs(logits, tf.cast(tf.oneHot(tc, V), 'float32') as tf.Tensor2D));
      }
      const all = parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
      return tf.reshape(all, [B, T]) as tf.Tensor2D;
    });
  }

  /**
   * Mean next-token cross-entropy over predicted positions t ≥ 1 (HF `labels=input_ids`); with `mask`, only
   * positions where mask[:, t] == 1 count.
   */
  loss(ids: tf.Tensor2D, opts: ForwardOptions & { mask?: tf.Tensor2D } = {}): tf.Scalar {
    const [B, T] = ids.shape;
    return tf.tidy(() => {
      const lp = this.tokenLogProbs(ids, opts);
      if (!opts.mask) return tf.neg(tf.mean(lp)) as tf.Scalar;
      const m = tf.cast(tf.slice(opts.mask, [0, 1], [B, T - 1]), 'float32');
      return tf.div(tf.neg(tf.sum(tf.mul(lp, m))), tf.maximum(tf.sum(m), 1)) as tf.Scalar;
    });
  }

  /**
   * Loss and gradients on the device w.r.t. the named parameters (HF names; default: all), each as the gradients of
   * its variables (row chunks when split). The variables need not be trainable (a resident model is frozen): they
   * count as trainable for this call only. The caller disposes what it gets.
   */
  deviceGradients(ids: tf.Tensor2D, names?: string[]): { loss: tf.Scalar; grads: Map<string, tf.Tensor[]> } {
    const list = names ?? this.parameterNames();
    const varsOf = list.map((n) => this.variablesOf(n));
    const flat = varsOf.flat();
    const trainable = flat.map((v) => v.trainable);
    for (const v of flat) v.trainable = true;
    try {
      const { value, grads } = tf.variableGrads(() => this.loss(ids), flat);
      const out = new Map<string, tf.Tensor[]>();
      list.forEach((name, i) => out.set(name, varsOf[i]!.map((v) => {
        const g = grads[v.name];
        if (!g) throw new Error(`no gradient for ${name}`);
        return g;
      })));
      return { loss: value, grads: out };
    } finally {
      flat.forEach((v, i) => { v.trainable = trainable[i]!; });
    }
  }

  /**
   * Loss and gradients (host copies) w.r.t. the named parameters (HF names; default: all). A split parameter's
   * gradient comes back whole under its HF name (its chunks' gradients concatenated).
   */
  async gradients(ids: tf.Tensor2D, names?: string[]): Promise<{ loss: number; grads: WeightMap }> {
    const { loss, grads } = this.deviceGradients(ids, names);
    try {
      const out: WeightMap = new Map();
      for (const [name, parts] of grads) {
        const host: HostTensor[] = [];
        for (const g of parts) host.push({ shape: g.shape.slice(), data: (await g.data()) as Float32Array });
        out.set(name, concatRows(host));
      }
      return { loss: (await loss.data())[0]!, grads: out };
    } finally {
      loss.dispose();
      for (const parts of grads.values()) for (const g of parts) g.dispose();
    }
  }

  /** Host copies of every parameter by HF name (split ones concatenated), in canonical (config) order. */
  async weights(): Promise<WeightMap> {
    const out: WeightMap = new Map();
    for (const name of this.parameterNames()) {
      const parts: HostTensor[] = [];
      for (const v of this.variablesOf(name)) parts.push({ shape: v.shape.slice(), data: (await v.data()) as Float32Array });
      out.set(name, concatRows(parts));
    }
    return out;
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

/** Concatenates host tensors along axis 0 (the row chunks of a split parameter); one part is returned as is. */
function concatRows(parts: HostTensor[]): HostTensor {
  if (parts.length === 1) return parts[0]!;
  const data = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
  let offset = 0;
  for (const p of parts) { data.set(p.data, offset); offset += p.data.length; }
  const rows = parts.reduce((a, p) => a + p.shape[0]!, 0);
  return { shape: [rows, ...parts[0]!.shape.slice(1)], data };
}

const customGrad = <F>(f: F) => tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown;

const rmsNormFns = new Map<number, (x: tf.Tensor2D, w: tf.Tensor1D) => tf.Tensor2D>();

/**
 * RMSNorm x·rsqrt(mean(x²) + eps)·w (HF LlamaRMSNorm, float32) with a closed-form gradient (fewer taped ops):
 * with g = dy·w and r = rsqrt(mean(x²) + eps): dx = r·g − x·r³·mean(g·x), dw = Σ_rows dy·x·r. On the fused WebGPU
 * kernels when they are active (precision mixed), else composite tfjs ops (tests compare the two).
 */
export function rmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  if (fusedOpsActive()) return fusedRmsNorm(x, w, eps);
  let f = rmsNormFns.get(eps);
  if (!f) {
    f = customGrad((xx: tf.Tensor, ww: tf.Tensor, save: tf.GradSaveFunc) => {
      const r = tf.rsqrt(tf.add(tf.mean(tf.square(xx), -1, true), eps));
      save([xx, ww, r]);
      return {
        value: tf.mul(tf.mul(xx, r), ww),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sw, sr] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
          const g = tf.mul(dy, sw);
          const dx = tf.sub(tf.mul(g, sr), tf.mul(tf.mul(sx, tf.mul(tf.square(sr), sr)), tf.mean(tf.mul(g, sx), -1, true)));
          const dw = tf.sum(tf.mul(dy, tf.mul(sx, sr)), 0);
          return [dx, dw];
        },
      };
    }) as (x: tf.Tensor2D, w: tf.Tensor1D) => tf.Tensor2D;
    rmsNormFns.set(eps, f);
  }
  return f(x, w);
}

/** SwiGLU on the fused kernels when they are active, else the composite below (tests compare the two). */
export function swiglu(g: tf.Tensor2D, u: tf.Tensor2D): tf.Tensor2D {
  return fusedOpsActive() ? fusedSwiglu(g, u) : compositeSwiglu(g, u);
}

/** SwiGLU silu(g)·u = g·σ(g)·u with gradients du = dy·g·σ(g), dg = dy·u·σ(g)·(1 + g·(1 − σ(g))). */
const compositeSwiglu = customGrad((g: tf.Tensor, u: tf.Tensor, save: tf.GradSaveFunc) => {
  const sg = tf.sigmoid(g);
  const silu = tf.mul(g, sg);
  save([g, u, sg, silu]);
  return {
    value: tf.mul(silu, u),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sg0, su, ss, ssilu] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      const du = tf.mul(dy, ssilu);
      const dg = tf.mul(tf.mul(dy, su), tf.mul(ss, tf.add(1, tf.mul(sg0, tf.sub(1, ss)))));
      return [dg, du];
    },
  };
}) as (g: tf.Tensor2D, u: tf.Tensor2D) => tf.Tensor2D;

/**
 * log_softmax(logits)[target] = Σ logits·onehot − logsumexp(logits), rows [n, V] → [n], with the closed-form
 * gradient dy·(onehot − softmax(logits)) instead of backpropagating through logsumexp's max/sub/exp (which tapes a
 * Max gradient with an Equal mask over [n, V]). One-hot selection keeps it free of GatherNd (no tfjs gradient).
 */
const targetLogProbs = tf.customGrad(((logits: tf.Tensor, onehot: tf.Tensor, save: tf.GradSaveFunc) => {
  const lse = tf.logSumExp(logits, -1, true);
  const value = tf.sub(tf.sum(tf.mul(logits, onehot), -1), tf.reshape(lse, [logits.shape[0]!]));
  save([logits, onehot, lse]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [l, oh, m] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const p = tf.exp(tf.sub(l, m));
      return [tf.mul(tf.reshape(dy, [l.shape[0]!, 1]), tf.sub(oh, p)), tf.zerosLike(oh)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (logits: tf.Tensor2D, onehot: tf.Tensor2D) => tf.Tensor1D;

/** Seeded weights: N(0, 0.02) for linears and embeddings (Box–Muller on the host), ones for norms, zeros for biases. */
export function initWeights(config: LlamaConfig, seed: number, std = 0.02): WeightMap {
  const rand = mulberry32(seed);
  const out: WeightMap = new Map();
  for (const [name, shape] of parameterShapes(config)) {
    const data = new Float32Array(numel(shape));
    if (name.endsWith('norm.weight')) data.fill(1);
    // One generator across all tensors, in parameter order: the init depends only on (config, seed).
    else if (!name.endsWith('.bias')) fillNormal(data, rand, std);
    out.set(name, { shape: shape.slice(), data } satisfies HostTensor);
  }
  return out;
}
