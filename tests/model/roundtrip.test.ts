// Writer round trips, heterogeneous (per-layer width) models, seeded initialization.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  LlamaModel, countParameters, initWeights, loadModel, readHfConfig, saveModel, toHfConfig,
  type LlamaConfig, type WeightMap,
} from '../../src/model/index.js';
import { haveShared, maxAbsDiff, paths, useCpu } from './shared-paths.js';

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'lopper-model-'));
}

test('HF -> write -> load round-trips bit-identically, with a plain LLaMA config', async (t) => {
  if (!haveShared(t, 'hf')) return;
  const dir = await tempDir();
  try {
    const a = await loadModel(paths.hf);
    await saveModel(dir, a);
    const b = await loadModel(dir);
    assert.deepEqual(b.config, a.config);
    assert.deepEqual([...b.weights.keys()], [...a.weights.keys()]);
    for (const [name, w] of a.weights) {
      assert.deepEqual(b.weights.get(name)!.shape, w.shape);
      assert.ok(bitsEqual(b.weights.get(name)!.data, w.data), name);
    }
    // Tokenizer files are copied byte for byte.
    assert.deepEqual(await readFile(join(dir, 'tokenizer.json')), await readFile(join(paths.hf, 'tokenizer.json')));
    const written = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const original = JSON.parse(await readFile(join(paths.hf, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(written.num_attention_heads_per_layer, undefined);
    for (const k of ['model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
      'head_dim', 'vocab_size', 'rms_norm_eps', 'rope_theta', 'tie_word_embeddings', 'hidden_act', 'max_position_embeddings', 'architectures']) {
      assert.deepEqual(written[k], original[k], k);
    }
    // Writing the reloaded model again gives the same bytes.
    const dir2 = await tempDir();
    await saveModel(dir2, b);
    assert.deepEqual(await readFile(join(dir2, 'model.safetensors')), await readFile(join(dir, 'model.safetensors')));
    await rm(dir2, { recursive: true });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a llama2.c model saves as a self-contained HF directory (tokenizer.json generated)', async (t) => {
  if (!haveShared(t, 'llama2c', 'hf')) return;
  const dir = await tempDir();
  try {
    const a = await loadModel(paths.llama2c);
    await saveModel(dir, a);
    const b = await loadModel(dir);
    const hf = await loadModel(paths.hf);
    for (const [name, w] of hf.weights) assert.ok(bitsEqual(b.weights.get(name)!.data, w.data), name);
    const text = 'Once upon a time, Lily and Tom went to the park.\nThey saw a big dog!';
    assert.deepEqual(b.tokenizer!.encode(text), hf.tokenizer!.encode(text));
    assert.equal(b.tokenizer!.bosId, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Keeps rows (dim 0) or columns (dim 1) `keep` of a [r, c] host tensor. */
function take(w: { shape: number[]; data: Float32Array }, keep: number[], dim: 0 | 1) {
  const [r, c] = w.shape as [number, number];
  if (dim === 0) {
    const out = new Float32Array(keep.length * c);
    keep.forEach((k, i) => out.set(w.data.subarray(k * c, (k + 1) * c), i * c));
    return { shape: [keep.length, c], data: out };
  }
  const out = new Float32Array(r * keep.length);
  for (let i = 0; i < r; i++) keep.forEach((k, j) => { out[i * keep.length + j] = w.data[i * c + k]!; });
  return { shape: [r, keep.length], data: out };
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

test('heterogeneous model: removing units whose outputs are zero leaves logits unchanged; forward+backward run; round trip', async (t) => {
  if (!haveShared(t, 'hf')) return;
  await useCpu();
  const base = await loadModel(paths.hf);
  const cfg = base.config;
  const D = cfg.headDim;
  // Zero the outputs of: layer 1 MLP channels 100..171; layer 2 KV head 3 (query heads 6, 7); layer 4 KV heads 0-1.
  const w: WeightMap = new Map([...base.weights].map(([k, v]) => [k, { shape: v.shape, data: v.data.slice() }]));
  const zeroCols = (name: string, cols: number[]) => {
    const t = w.get(name)!;
    const c = t.shape[1]!;
    for (let i = 0; i < t.shape[0]!; i++) for (const k of cols) t.data[i * c + k] = 0;
  };
  zeroCols('model.layers.1.mlp.down_proj.weight', range(100, 172));
  zeroCols('model.layers.2.self_attn.o_proj.weight', range(6 * D, 8 * D));
  zeroCols('model.layers.4.self_attn.o_proj.weight', range(0, 4 * D));
  // Pruned copy.
  const layers = cfg.layers.map((l) => ({ ...l }));
  layers[1]!.intermediateSize = 100;
  layers[2]!.numAttentionHeads = 6; layers[2]!.numKeyValueHeads = 3;
  layers[4]!.numAttentionHeads = 4; layers[4]!.numKeyValueHeads = 2;
  const pcfg: LlamaConfig = { ...cfg, layers };
  const pw: WeightMap = new Map(w);
  const keepMlp = range(0, 100);
  pw.set('model.layers.1.mlp.gate_proj.weight', take(w.get('model.layers.1.mlp.gate_proj.weight')!, keepMlp, 0));
  pw.set('model.layers.1.mlp.up_proj.weight', take(w.get('model.layers.1.mlp.up_proj.weight')!, keepMlp, 0));
  pw.set('model.layers.1.mlp.down_proj.weight', take(w.get('model.layers.1.mlp.down_proj.weight')!, keepMlp, 1));
  const prune = (l: number, qKeep: number[], kvKeep: number[]) => {
    const p = `model.layers.${l}.self_attn`;
    pw.set(`${p}.q_proj.weight`, take(w.get(`${p}.q_proj.weight`)!, qKeep, 0));
    pw.set(`${p}.k_proj.weight`, take(w.get(`${p}.k_proj.weight`)!, kvKeep, 0));
    pw.set(`${p}.v_proj.weight`, take(w.get(`${p}.v_proj.weight`)!, kvKeep, 0));
    pw.set(`${p}.o_proj.weight`, take(w.get(`${p}.o_proj.weight`)!, qKeep, 1));
  };
  prune(2, range(0, 6 * D), range(0, 3 * D));
  prune(4, range(4 * D, 8 * D), range(2 * D, 4 * D));
  assert.equal(countParameters(pcfg), [...pw.values()].reduce((a, v) => a + v.data.length, 0));
  assert.ok(countParameters(pcfg) < countParameters(cfg));

  const ids = tf.tensor2d([[1, 403, 407, 261, 378, 13, 291, 410, 456, 425, 417, 340], [1, 317, 269, 274, 287, 263, 377, 267, 265, 282, 295, 433]], [2, 12], 'int32');
  const full = LlamaModel.fromWeights(cfg, w);
  const pruned = LlamaModel.fromWeights(pcfg, pw);
  try {
    const a = await full.logits(ids).data();
    const b = await pruned.logits(ids).data();
    const d = maxAbsDiff(b, a);
    t.diagnostic(`pruned vs zeroed logits max |diff| ${d.toExponential(3)}`);
    assert.ok(d < 1e-5);
    const { loss, grads } = await pruned.gradients(ids);
    assert.ok(Number.isFinite(loss));
    assert.deepEqual(grads.get('model.layers.2.self_attn.k_proj.weight')!.shape, [3 * D, cfg.hiddenSize]);
    assert.deepEqual(grads.get('model.layers.1.mlp.down_proj.weight')!.shape, [cfg.hiddenSize, 100]);
    for (const [name, g] of grads) assert.ok(g.data.every(Number.isFinite), name);
  } finally {
    full.dispose();
    pruned.dispose();
    ids.dispose();
  }

  // Written with per-layer lists; loads back bit-identically.
  const hfJson = toHfConfig(pcfg);
  assert.deepEqual(hfJson.num_attention_heads_per_layer, [8, 8, 6, 8, 4]);
  assert.deepEqual(hfJson.num_key_value_heads_per_layer, [4, 4, 3, 4, 2]);
  assert.deepEqual(hfJson.intermediate_size_per_layer, [172, 100, 172, 172, 172]);
  assert.deepEqual(readHfConfig(hfJson).layers, pcfg.layers);
  const dir = await tempDir();
  try {
    await saveModel(dir, { config: pcfg, weights: pw, tokenizer: base.tokenizer });
    const back = await loadModel(dir);
    assert.deepEqual(back.config.layers, pcfg.layers);
    for (const [name, v] of pw) assert.ok(bitsEqual(back.weights.get(name)!.data, v.data), name);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('initWeights is seeded and shaped by the config; biases and untied heads are supported', async () => {
  await useCpu();
  const config = readHfConfig({
    model_type: 'llama', hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, vocab_size: 64, tie_word_embeddings: false, attention_bias: true, mlp_bias: true,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
    intermediate_size_per_layer: [48, 24],
  });
  const a = initWeights(config, 7), b = initWeights(config, 7), c = initWeights(config, 8);
  assert.ok(bitsEqual(a.get('model.layers.0.self_attn.q_proj.weight')!.data, b.get('model.layers.0.self_attn.q_proj.weight')!.data));
  assert.ok(!bitsEqual(a.get('model.layers.0.self_attn.q_proj.weight')!.data, c.get('model.layers.0.self_attn.q_proj.weight')!.data));
  assert.ok(a.has('lm_head.weight') && a.has('model.layers.1.self_attn.o_proj.bias') && a.has('model.layers.1.mlp.down_proj.bias'));
  assert.deepEqual(a.get('model.layers.1.mlp.up_proj.weight')!.shape, [24, 32]);
  const e = a.get('model.embed_tokens.weight')!.data;
  const std = Math.sqrt(e.reduce((s, v) => s + v * v, 0) / e.length);
  assert.ok(Math.abs(std - 0.02) < 0.002, `std ${std}`);
  const model = LlamaModel.fromWeights(config, a);
  try {
    const ids = tf.tensor2d([[1, 5, 9, 2, 40, 63]], [1, 6], 'int32');
    const { loss, grads } = await model.gradients(ids);
    ids.dispose();
    assert.ok(Math.abs(loss - Math.log(64)) < 0.1, `loss ${loss} at init should be near ln(V)`);
    assert.equal(grads.size, model.params.size);
    assert.ok(grads.get('model.layers.0.self_attn.q_proj.bias')!.data.some((v) => v !== 0));
  } finally {
    model.dispose();
  }
});

test('sharded checkpoints (model.safetensors.index.json) with bf16/f16 shards load, converted exactly', async (t) => {
  if (!haveShared(t, 'hf')) return;
  const { writeFile, copyFile } = await import('node:fs/promises');
  const base = await loadModel(paths.hf);
  const dir = await tempDir();
  try {
    const names = [...base.weights.keys()];
    const half = Math.ceil(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    const expected = new Map<string, Float32Array>();
    for (let s = 0; s < 2; s++) {
      const file = `model-0000${s + 1}-of-00002.safetensors`;
      const header: Record<string, unknown> = {};
      const chunks: Uint8Array[] = [];
      let off = 0;
      for (const name of shards[s]!) {
        const w = base.weights.get(name)!;
        // Shard 1 in bf16 (truncate the low 16 bits), shard 2 in f32.
        let bytes: Uint8Array;
        if (s === 0) {
          const u = new Uint32Array(w.data.buffer, w.data.byteOffset, w.data.length);
          const bf = new Uint16Array(u.length);
          const back = new Uint32Array(u.length);
          for (let i = 0; i < u.length; i++) { bf[i] = u[i]! >>> 16; back[i] = (u[i]! >>> 16) << 16; }
          expected.set(name, new Float32Array(back.buffer));
          bytes = new Uint8Array(bf.buffer);
        } else {
          expected.set(name, w.data);
          bytes = new Uint8Array(w.data.buffer.slice(w.data.byteOffset, w.data.byteOffset + w.data.byteLength));
        }
        header[name] = { dtype: s === 0 ? 'BF16' : 'F32', shape: w.shape, data_offsets: [off, off + bytes.length] };
        off += bytes.length;
        chunks.push(bytes);
        weightMap[name] = file;
      }
      const h = new TextEncoder().encode(JSON.stringify(header));
      const out = new Uint8Array(8 + h.length + off);
      new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
      out.set(h, 8);
      let p = 8 + h.length;
      for (const c of chunks) { out.set(c, p); p += c.length; }
      await writeFile(join(dir, file), out);
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    await copyFile(join(paths.hf, 'config.json'), join(dir, 'config.json'));
    const loaded = await loadModel(dir);
    assert.equal(loaded.tokenizer, null);
    assert.deepEqual([...loaded.weights.keys()], names);
    for (const [name, e] of expected) assert.ok(bitsEqual(loaded.weights.get(name)!.data, e), name);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('config.json: unknown fields survive, EOS lists are kept, dtype says float32, rope_parameters are read', () => {
  const src = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 100, torch_dtype: 'bfloat16', eos_token_id: [7, 8, 9],
    custom_field: { a: 1 }, rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  };
  const c = readHfConfig(src);
  assert.equal(c.eosTokenId, 7);
  assert.equal(c.headDim, 16);
  assert.equal(c.ropeTheta, 500000);
  assert.deepEqual(c.ropeScaling, { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  const out = toHfConfig(c);
  assert.deepEqual(out.eos_token_id, [7, 8, 9]);
  assert.equal(out.torch_dtype, 'float32');
  assert.deepEqual(out.custom_field, { a: 1 });
  assert.equal(out.tie_word_embeddings, false);
  const back = readHfConfig(out);
  assert.deepEqual({ ...back, extra: { ...back.extra, torch_dtype: 'bfloat16' } }, c);
  assert.throws(() => readHfConfig({ ...src, hidden_act: 'gelu' }), /hidden_act/);
  assert.throws(() => readHfConfig({ ...src, use_sliding_window: true, model_type: 'qwen2' }), /sliding/);
});
