// The pure pruning modules on tiny hand-made tensors: importance criteria, member alignment and reduction
// (GQA map), normalizers, unit selection, surgery, and calibration sampling.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readHfConfig, countParameters } from '../../src/model/config.js';
import { checkWeights, initWeights } from '../../src/model/llama.js';
import type { HostTensor } from '../../src/model/types.js';
import { alignScores, normalizers, reductions, unitImportance } from '../../src/prune/aggregate.js';
import { attentionGroup, buildGroups, mlpGroup, type PruningGroup } from '../../src/prune/groups.js';
import { channelScores } from '../../src/prune/importance.js';
import { checkLegal, keptUnits, topUnits } from '../../src/prune/selection.js';
import { pruneModel } from '../../src/prune/surgery.js';
import { calibrationBatch } from '../../src/data/calibration.js';
import { textLines } from '../../src/data/text.js';

const T = (shape: number[], data: number[]): HostTensor => ({ shape, data: Float32Array.from(data) });
const close = (a: ArrayLike<number>, b: number[], tol = 1e-6) =>
  assert.ok(b.every((x, i) => Math.abs(a[i]! - x) <= tol * Math.max(1, Math.abs(x))), `${Array.from(a)} != ${b}`);

test('channel scores: l1, l2 (squared), vectorize |Σ W·g|, param_first Σ|W·g|, param_second Σ W²F, param_mix Σ|W·g − ½W²F|', () => {
  const w = T([2, 3], [1, -2, 3, -1, 0.5, 2]);
  const g = Float32Array.from([0.5, 0.25, -1, 2, -2, 0.5]);
  const f = Float32Array.from([1, 2, 0.5, 4, 1, 0.25]);
  close(channelScores('l1', w, 0), [6, 3.5]);
  close(channelScores('l1', w, 1), [2, 2.5, 5]);
  close(channelScores('l2', w, 0), [14, 5.25]);
  // W·g row 0: 0.5, -0.5, -3 → vectorize |−3| = 3, param_first 4; row 1: -2, -1, 1 → |−2| = 2, param_first 4
  close(channelScores('vectorize', w, 0, g), [3, 2]);
  close(channelScores('param_first', w, 0, g), [4, 4]);
  // columns: (0.5, -2), (-0.5, -1), (-3, 1)
  close(channelScores('vectorize', w, 1, g), [1.5, 1.5, 2]);
  close(channelScores('param_first', w, 1, g), [2.5, 1.5, 4]);
  // W²F: 1, 8, 4.5 | 4, 0.25, 1
  close(channelScores('param_second', w, 0, undefined, f), [13.5, 5.25]);
  // W·g − ½W²F: 0, -4.5, -5.25 | -4, -1.125, 0.5
  close(channelScores('param_mix', w, 0, g, f), [9.75, 5.625]);
  close(channelScores('l1', w, null), [9.5]);
  close(channelScores('l1', T([3], [1, -2, 3]), 0), [1, 2, 3]);
});

const gqa = readHfConfig({ hidden_size: 16, intermediate_size: 6, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 2, vocab_size: 10 });

test('GQA alignment: query head h goes to KV group h // n_rep (not LLM-Pruner\'s c mod kv_channels fold)', () => {
  const g = attentionGroup(gqa, 0); // 4 q heads, 2 KV heads, d = 2 → q has 8 channels, k 4
  // q channel scores: head h channel j = 10h + j
  const q = Float64Array.from([0, 1, 10, 11, 20, 21, 30, 31]);
  // aligned: KV 0 ← heads 0,1: (0+10, 1+11); KV 1 ← heads 2,3: (20+30, 21+31)
  close(alignScores(q, g, 2), [10, 12, 50, 52]);
  // LLM-Pruner's fold would give KV 0 ← channels {0,1} + {4,5} = heads 0 and 2.
  const units = unitImportance(g, [null, q, null, null], 'sum', 'none');
  close(units, [22, 102]);
});

test('member reductions per aligned channel, then sum over the head; first = root, last = o_proj', () => {
  const g = attentionGroup(gqa, 0); // members [k, q, v, o]
  const k = Float64Array.from([1, 2, 3, 4]);
  const q = Float64Array.from([1, 1, 1, 1, 5, 5, 5, 5]); // aligned [2, 2, 10, 10]
  const v = Float64Array.from([4, 0, 0, 4]);
  const o = Float64Array.from([0, 0, 0, 0, 1, 1, 1, 1]); // aligned [0, 0, 2, 2]
  const s = [k, q, v, o];
  close(unitImportance(g, s, 'sum', 'none'), [1 + 2 + 2 + 2 + 4 + 0, 3 + 4 + 10 + 10 + 0 + 4 + 2 + 2]);
  close(unitImportance(g, s, 'mean', 'none'), [11 / 4, 35 / 4]);
  close(unitImportance(g, s, 'max', 'none'), [4 + 2, 10 + 10]);
  close(unitImportance(g, s, 'prod', 'none'), [1 * 2 * 4 * 0 + 2 * 2 * 0 * 0, 3 * 10 * 0 * 2 + 4 * 10 * 4 * 2]);
  close(unitImportance(g, s, 'first', 'none'), [3, 7]);
  close(unitImportance(g, s, 'last', 'none'), [0, 4]);
  assert.equal(reductions.last([1, 2, 9]), 9);
  assert.equal(g.members[0]!.role, 'k_proj');
  assert.equal(g.members.at(-1)!.role, 'o_proj');
  assert.equal(mlpGroup(gqa, 1).members.at(-1)!.role, 'down_proj');
});

test('normalizers (Torch-Pruning definitions)', () => {
  const s = Float64Array.from([1, 2, 3, 6]);
  close(normalizers.none(s), [1, 2, 3, 6]);
  close(normalizers.sum(s), [1 / 12, 2 / 12, 3 / 12, 6 / 12]);
  close(normalizers.mean(s), [1 / 3, 2 / 3, 1, 2]);
  close(normalizers.max(s), [1 / 6, 2 / 6, 0.5, 1]);
  const std = Math.sqrt(((1 - 3) ** 2 + 1 + 0 + 9) / 3);
  close(normalizers.gaussian(s), [-2 / std, -1 / std, 0, 3 / std], 1e-6);
});

function group(id: string, kind: 'attention' | 'mlp', units: number, layer = 0): PruningGroup {
  return { id, kind, layer, units, unitSize: 1, unit: kind === 'mlp' ? 'channel' : 'kv_group', members: [] };
}

test('selection: local keeps floor(n(1-r)) best, ascending, ties to the lower index; global ranks across groups; round_to', () => {
  assert.deepEqual(topUnits([3, 1, 3, 2], 2), [0, 2]);
  assert.deepEqual(topUnits([1, 1, 1, 1], 3), [0, 1, 2]);
  const a = { group: group('a', 'attention', 4), scores: Float64Array.from([5, 1, 4, 3]) };
  const m = { group: group('m', 'mlp', 6), scores: Float64Array.from([0.1, 0.6, 0.2, 0.5, 0.3, 0.4]) };
  const local = keptUnits([a, m], 0.5, 'local');
  assert.deepEqual(local.get('a'), [0, 2]);
  assert.deepEqual(local.get('m'), [1, 3, 5]);
  // global: 10 units, keep the best 5 overall: a's 5, 4, 3, 1 and m's 0.6 (no normalization: scales compete)
  const global = keptUnits([a, m], 0.5, 'global');
  assert.deepEqual(global.get('a'), [0, 1, 2, 3]);
  assert.deepEqual(global.get('m'), [1]);
  const rounded = keptUnits([a, m], 0.5, 'local', 4);
  assert.deepEqual(rounded.get('m'), [1, 3, 4, 5], '3 kept → 4, the next best (0.3) added');
  assert.deepEqual(rounded.get('a'), [0, 2], 'round_to does not apply to heads');
  assert.throws(() => checkLegal([a.group, m.group], keptUnits([a, m], 0.8, 'global')), (e: { code?: string; message: string }) => e.code === 'LP4004' && /every MLP channel/.test(e.message));
});

test('surgery: kept KV groups slice q/k/v rows and o columns of their heads; MLP rows/columns; shapes stay legal', () => {
  const weights = initWeights(gqa, 7);
  const groups = buildGroups(gqa, { mode: 'block', attention: [0, 1], mlp: [1, 2] });
  const kept = new Map([['layers.0.attention', [1]], ['layers.1.mlp', [0, 2, 5]]]);
  const { config, weights: out } = pruneModel(gqa, weights, groups, kept);
  assert.deepEqual(config.layers.map((l) => [l.numAttentionHeads, l.numKeyValueHeads, l.intermediateSize]), [[2, 1, 6], [4, 2, 3]]);
  checkWeights(config, out);
  const q0 = weights.get('model.layers.0.self_attn.q_proj.weight')!;
  const q1 = out.get('model.layers.0.self_attn.q_proj.weight')!;
  // KV group 1 ↔ q heads 2, 3 ↔ q rows 4..7 (head_dim 2)
  assert.deepEqual([...q1.data], [...q0.data.subarray(4 * 16, 8 * 16)]);
  const o0 = weights.get('model.layers.0.self_attn.o_proj.weight')!;
  const o1 = out.get('model.layers.0.self_attn.o_proj.weight')!;
  for (let r = 0; r < 16; r++) assert.deepEqual([...o1.data.subarray(r * 4, r * 4 + 4)], [...o0.data.subarray(r * 8 + 4, r * 8 + 8)]);
  const d0 = weights.get('model.layers.1.mlp.down_proj.weight')!;
  const d1 = out.get('model.layers.1.mlp.down_proj.weight')!;
  for (let r = 0; r < 16; r++) assert.deepEqual([...d1.data.subarray(r * 3, r * 3 + 3)], [0, 2, 5].map((c) => d0.data[r * 6 + c]));
  assert.equal(weights.get('model.layers.0.self_attn.q_proj.weight')!.shape[0], 8, 'input weights untouched');
});

test('surgery: channel mode slices the hidden dimension everywhere; layer mode drops and renumbers layers', () => {
  const weights = initWeights(gqa, 3);
  const hidden = buildGroups(gqa, { mode: 'channel' });
  const keep = [0, 3, 4, 9, 15];
  const ch = pruneModel(gqa, weights, hidden, new Map([['hidden', keep]]));
  assert.equal(ch.config.hiddenSize, 5);
  assert.equal(ch.config.headDim, 2);
  checkWeights(ch.config, ch.weights);
  const e0 = weights.get('model.embed_tokens.weight')!;
  assert.deepEqual([...ch.weights.get('model.embed_tokens.weight')!.data.subarray(0, 5)], keep.map((c) => e0.data[c]));
  const layers = buildGroups(gqa, { mode: 'layer' });
  assert.equal(layers[0]!.members.length, 9);
  const ly = pruneModel(gqa, weights, layers, new Map([['decoder_layers', [1]]]));
  assert.equal(ly.config.numHiddenLayers, 1);
  checkWeights(ly.config, ly.weights);
  assert.equal(ly.weights.get('model.layers.0.mlp.up_proj.weight'), weights.get('model.layers.1.mlp.up_proj.weight'));
  assert.equal(countParameters(ly.config) < countParameters(gqa), true);
});

const tok = { bosId: 1, encode: (s: string) => [...s].map((c) => c.charCodeAt(0)) };

test('calibration: sequential = first usable records cut to seq_len; random = seeded, without replacement, windows inside', () => {
  assert.deepEqual(textLines('a\n\n  \nbc\r\n'), ['a', 'bc']);
  const recs = ['abc', 'x', 'defgh', 'ijklmnop', 'qr', 'stuvw'];
  const seq = calibrationBatch(recs, tok, { samples: 2, seqLen: 4, sampling: 'sequential', seed: 0 });
  assert.deepEqual([...seq.ids], [1, 97, 98, 99, 1, 100, 101, 102]);
  assert.deepEqual(seq.records.map((r) => r.record), [0, 2]);
  const r1 = calibrationBatch(recs, tok, { samples: 3, seqLen: 5, sampling: 'random', seed: 42 });
  const r2 = calibrationBatch(recs, tok, { samples: 3, seqLen: 5, sampling: 'random', seed: 42 });
  const r3 = calibrationBatch(recs, tok, { samples: 3, seqLen: 5, sampling: 'random', seed: 7 });
  assert.deepEqual(r1, r2);
  assert.notDeepEqual(r1.records, r3.records, 'another seed draws another order or other windows');
  assert.deepEqual(r1.records.map((r) => r.record).sort(), [2, 3, 5], 'every usable record once (only 3 have >= 5 ids)');
  for (const [i, { record, start }] of r1.records.entries()) {
    const full = [1, ...tok.encode(recs[record]!)];
    assert.ok(start >= 0 && start + 5 <= full.length);
    assert.deepEqual([...r1.ids.subarray(i * 5, i * 5 + 5)], full.slice(start, start + 5));
  }
  assert.throws(() => calibrationBatch(recs, tok, { samples: 4, seqLen: 5, sampling: 'random', seed: 1 }), /3 record/);
  assert.throws(() => calibrationBatch(recs, tok, { samples: 9, seqLen: 2, sampling: 'sequential', seed: 1 }), (e: { code?: string }) => e.code === 'LP4005');
});
