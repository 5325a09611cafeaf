// stories260K (GQA: 8 heads, 4 KV heads), layers [1, 4], reduce: sum: the kept KV groups and MLP channels of the
// group → score → aggregate → prune stages equal tests/prune/reference-f64.ts on the fixture gradients, for
// random, l1, l2, taylor vectorize and param_first, at ratios 0.25 and 0.5. The second-order variants are in
// stories260k-second-order.test.ts (they need per-sample gradients and take longer).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { loadModel } from '../../src/model/index.js';
import { readSafetensors, type SafetensorsTensor } from '../../src/model/safetensors.js';
import group from '../../src/stages/group.js';
import score from '../../src/stages/score.js';
import aggregate from '../../src/stages/aggregate.js';
import prune from '../../src/stages/prune.js';
import { deriveSeed, mulberry32 } from '../../src/seeded-random.js';
import { StageBench } from './stage-context.js';
import { boundaryGap, keep, kvGroupScores, mlpChannelScores, type Kind, type Source } from './reference-f64.js';
import { MODEL, PRUNED_LAYERS, calibDataset, loadReferenceInputs, mat, missingShared, readJson } from './stories260k-helpers.js';
import { sharedResidency } from '../../src/model/residency.js';

const missing = missingShared();
let weights: Map<string, SafetensorsTensor>;
let fixture: Map<string, SafetensorsTensor>;
let bench: StageBench;

before(async () => {
  if (missing) return;
  await tf.setBackend('cpu');
  ({ weights, fixture } = await loadReferenceInputs());
  bench = new StageBench({ base: MODEL }, calibDataset);
  await bench.run(group, 'groups', { model: 'base', mode: 'block', attention: { layers: [1, 4] }, mlp: { layers: [1, 4] } });
});

const source = (): Source => ({
  w: (n) => mat(weights.get(n)!),
  g: (n) => (fixture.has(`calib.grad.${n}`) ? mat(fixture.get(`calib.grad.${n}`)!) : undefined),
  f: () => undefined,
});

/** Runs score → aggregate (sum) → prune at both ratios; returns the plans. */
async function pipeline(id: string, scoreParams: Record<string, unknown>): Promise<Record<string, any>> { // eslint-disable-line @typescript-eslint/no-explicit-any
  await bench.run(score, `${id}-scores`, { groups: 'groups', ...scoreParams });
  await bench.run(aggregate, `${id}-importance`, { scores: `${id}-scores`, reduce: 'sum', normalize: 'none' });
  const plans: Record<string, unknown> = {};
  for (const ratio of [0.25, 0.5]) {
    const out = await bench.run(prune, `${id}-pruned-${ratio}`, { importance: `${id}-importance`, ratio, scope: 'local' });
    plans[ratio] = readJson(join(out, 'plan.json'));
  }
  return plans;
}

function checkAgainstReference(kind: Kind, plans: Record<string, any>): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const ratio of [0.25, 0.5]) {
    for (const layer of PRUNED_LAYERS) {
      const kv = kvGroupScores(kind, source(), layer, 8, 4, 8);
      const mlp = mlpChannelScores(kind, source(), layer, 172);
      const got = plans[ratio].layers[String(layer)];
      assert.deepEqual(got.attention.keep_kv_heads, keep(kv, ratio), `${kind} ratio ${ratio} layer ${layer} KV groups (scores ${kv.map((x) => x.toExponential(4))})`);
      assert.deepEqual(got.mlp.keep, keep(mlp, ratio), `${kind} ratio ${ratio} layer ${layer} MLP channels (boundary gap ${boundaryGap(mlp, ratio).toExponential(2)})`);
      assert.equal(got.attention.num_key_value_heads, Math.floor(4 * (1 - ratio)));
      assert.equal(got.attention.num_attention_heads, 2 * Math.floor(4 * (1 - ratio)));
      assert.equal(got.mlp.intermediate_size, Math.floor(172 * (1 - ratio)));
    }
    assert.deepEqual(plans[ratio].layers['0'].attention.keep_kv_heads, [0, 1, 2, 3]);
    assert.equal(plans[ratio].layers['4'].mlp.intermediate_size, 172);
  }
}

for (const kind of ['l1', 'l2'] as const) {
  test(`${kind}: kept KV groups and MLP channels equal the float64 reference`, async (t) => {
    if (missing) return t.skip(`missing ${missing}`);
    checkAgainstReference(kind, await pipeline(kind, { importance: kind }));
  });
}

for (const taylor of ['vectorize', 'param_first'] as const) {
  test(`taylor ${taylor}: kept sets equal the float64 reference on the fixture gradients`, async (t) => {
    if (missing) return t.skip(`missing ${missing}`);
    const plans = await pipeline(taylor, {
      importance: 'taylor', taylor, calibration: { dataset: 'calib', samples: 10, seq_len: 64, sampling: 'sequential' },
    });
    checkAgainstReference(taylor, plans);
    // The calibration batch the stage used is DESIGN.md's sequential sampling = the fixture's calib.input_ids.
    const stored = await readSafetensors(join(bench.outputs.get(`${taylor}-scores`)!, 'scores.safetensors'));
    assert.deepEqual([...stored.get('calibration.input_ids')!.data], [...fixture.get('calib.input_ids')!.data]);
    const index = readJson(join(bench.outputs.get(`${taylor}-scores`)!, 'scores.json'));
    assert.ok(Math.abs(index.loss - 1.4833472967147827) < 1e-5 * 1.49, `calibration loss ${index.loss}`);
  });
}

test('random: LLM-Pruner RandomImportance (uniform per root channel, summed per head), seeded', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  const plans = await pipeline('random', { importance: 'random' });
  // Groups in file order (layer 1 attention, layer 1 MLP, layer 2 ...); the GQA root is k_proj (32 channels).
  const random = mulberry32(deriveSeed(42));
  for (const layer of PRUNED_LAYERS) {
    const k = Array.from({ length: 32 }, () => random());
    const kv = [0, 1, 2, 3].map((h) => k.slice(h * 8, h * 8 + 8).reduce((a, b) => a + b, 0));
    const mlp = Array.from({ length: 172 }, () => random());
    for (const ratio of [0.25, 0.5]) {
      assert.deepEqual(plans[ratio].layers[String(layer)].attention.keep_kv_heads, keep(kv, ratio));
      assert.deepEqual(plans[ratio].layers[String(layer)].mlp.keep, keep(mlp, ratio));
    }
  }
});

test('pruned model loads back; parameter counts match; pruning it again works', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  const out = bench.outputs.get('l2-pruned-0.25')!;
  const plan = readJson(join(out, 'plan.json'));
  const m = await loadModel(join(out, 'model'));
  assert.equal(plan.params_before, 260032);
  // Each pruned layer goes from 8/4/172 to 6/3/129 (heads / KV heads / MLP channels); hidden 64, head_dim 8.
  const h = 64, d = 8;
  const layerParams = (H: number, KV: number, I: number) => 2 * h * H * d + 2 * h * KV * d + 3 * h * I + 2 * h;
  assert.equal(plan.params_after, 260032 - 3 * (layerParams(8, 4, 172) - layerParams(6, 3, 129)));
  assert.deepEqual(m.config.layers.map((l) => [l.numAttentionHeads, l.numKeyValueHeads, l.intermediateSize]),
    [[8, 4, 172], [6, 3, 129], [6, 3, 129], [6, 3, 129], [8, 4, 172]]);
  assert.ok(m.tokenizer, 'tokenizer files are copied');
  const hf = readJson(join(out, 'model/config.json'));
  assert.deepEqual(hf.num_key_value_heads_per_layer, [4, 3, 3, 3, 4]);
  // Surgery: kept k rows of layer 1 are the original rows of the kept KV groups.
  const keptKv: number[] = plan.layers['1'].attention.keep_kv_heads;
  const k0 = weights.get('model.layers.1.self_attn.k_proj.weight')!;
  const k1 = m.weights.get('model.layers.1.self_attn.k_proj.weight')!;
  keptKv.forEach((kv, i) => assert.deepEqual([...k1.data.subarray(i * 8 * 64, (i + 1) * 8 * 64)], [...k0.data.subarray(kv * 8 * 64, (kv + 1) * 8 * 64)]));
  const o0 = weights.get('model.layers.1.self_attn.o_proj.weight')!;
  const o1 = m.weights.get('model.layers.1.self_attn.o_proj.weight')!;
  const qHeads = keptKv.flatMap((kv) => [2 * kv, 2 * kv + 1]);
  for (let r = 0; r < 64; r += 17) {
    qHeads.forEach((hq, i) => {
      for (let j = 0; j < 8; j++) assert.equal(o1.data[r * 48 + i * 8 + j], o0.data[r * 64 + hq * 8 + j]);
    });
  }

  // Prune the pruned model again (l2, ratio 0.5): widths come from its own config.
  bench.models.pruned = join(out, 'model');
  await bench.run(group, 'groups2', { model: 'pruned', mode: 'block', attention: { layers: [1, 4] }, mlp: { layers: [1, 4] } });
  await bench.run(score, 'scores2', { groups: 'groups2', importance: 'l2' });
  await bench.run(aggregate, 'importance2', { scores: 'scores2', reduce: 'sum', normalize: 'none' });
  const out2 = await bench.run(prune, 'pruned2', { importance: 'importance2', ratio: 0.5, scope: 'local' });
  const plan2 = readJson(join(out2, 'plan.json'));
  const src: Source = { w: (n) => mat(m.weights.get(n)!), g: () => undefined, f: () => undefined };
  for (const layer of PRUNED_LAYERS) {
    assert.deepEqual(plan2.layers[String(layer)].attention.keep_kv_heads, keep(kvGroupScores('l2', src, layer, 6, 3, 8), 0.5));
    assert.deepEqual(plan2.layers[String(layer)].mlp.keep, keep(mlpChannelScores('l2', src, layer, 129), 0.5));
    assert.equal(plan2.layers[String(layer)].attention.num_key_value_heads, 1);
    assert.equal(plan2.layers[String(layer)].mlp.intermediate_size, 64);
  }
  assert.equal(plan2.params_before, plan.params_after);
  const m2 = await loadModel(join(out2, 'model'));
  assert.deepEqual(m2.config.layers.map((l) => l.intermediateSize), [172, 64, 64, 64, 172]);
  // Taylor on the heterogeneous pruned model (gradients through per-layer widths).
  await bench.run(score, 'scores3', { groups: 'groups2', importance: 'taylor', taylor: 'param_first', calibration: { dataset: 'calib', samples: 4, seq_len: 64 } });
  const loss3 = readJson(join(bench.outputs.get('scores3')!, 'scores.json')).loss;
  assert.ok(Number.isFinite(loss3) && loss3 > 1.4, `loss of the pruned model ${loss3}`);
  await bench.run(aggregate, 'importance3', { scores: 'scores3' });
  const plan3 = readJson(join(await bench.run(prune, 'pruned3', { importance: 'importance3', ratio: 0.5 }), 'plan.json'));
  assert.deepEqual([1, 2, 3].map((l) => [plan3.layers[l].attention.num_attention_heads, plan3.layers[l].mlp.intermediate_size]), [[2, 64], [2, 64], [2, 64]]);
});

test('a uniform result (layers [0, 5]) is a plain Hugging Face LLaMA config', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  await bench.run(group, 'groups-all', { model: 'base', mode: 'block', attention: { layers: [0, 5] }, mlp: { layers: [0, 5] } });
  await bench.run(score, 'scores-all', { groups: 'groups-all', importance: 'l1' });
  await bench.run(aggregate, 'importance-all', { scores: 'scores-all' });
  const out = await bench.run(prune, 'pruned-all', { importance: 'importance-all', ratio: 0.5 });
  const hf = readJson(join(out, 'model/config.json'));
  assert.equal(hf.model_type, 'llama');
  assert.equal(hf.num_attention_heads, 4);
  assert.equal(hf.num_key_value_heads, 2);
  assert.equal(hf.intermediate_size, 86);
  assert.equal(hf.head_dim, 8);
  assert.equal(hf.num_attention_heads % hf.num_key_value_heads, 0);
  for (const key of Object.keys(hf)) assert.ok(!key.endsWith('_per_layer'), `plain config has no ${key}`);
  const m = await loadModel(join(out, 'model'));
  assert.equal(m.config.layers.every((l) => l.intermediateSize === 86), true);
  sharedResidency().clear(); // the base stays resident for later stages until the residency lets it go
  assert.equal(tf.memory().numTensors, 0);
});
