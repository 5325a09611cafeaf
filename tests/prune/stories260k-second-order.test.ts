// stories260K, layers [1, 4], reduce: sum, ratios 0.25 and 0.5: taylor param_second and param_mix against the float64
// reference (tests/prune/reference-f64.ts). g = the fixture's calib.grad.* (transformers, float64); the fixture has
// no per-sample gradients, so F = (1/N) Σ_j g_j² is accumulated here in float64 from lopper's model, one backward per
// fixture calibration row. Also: param_mix and param_first keep different units only where the reference's rankings
// differ.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { LlamaModel, loadModel } from '../../src/model/index.js';
import type { SafetensorsTensor } from '../../src/model/safetensors.js';
import group from '../../src/stages/group.js';
import score from '../../src/stages/score.js';
import aggregate from '../../src/stages/aggregate.js';
import prune from '../../src/stages/prune.js';
import { StageBench } from './stage-context.js';
import { keep, kvGroupScores, mlpChannelScores, type Kind, type Mat, type Source } from './reference-f64.js';
import { MODEL, PRUNED_LAYERS, calibDataset, loadReferenceInputs, mat, missingShared, readJson } from './stories260k-helpers.js';

const missing = missingShared();
let weights: Map<string, SafetensorsTensor>;
let fixture: Map<string, SafetensorsTensor>;
const fisher = new Map<string, Mat>();
let bench: StageBench;

before(async () => {
  if (missing) return;
  await tf.setBackend('cpu');
  ({ weights, fixture } = await loadReferenceInputs());
  const loaded = await loadModel(MODEL);
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
  const ids = fixture.get('calib.input_ids')!;
  const [n, T] = ids.shape as [number, number];
  const names = [...loaded.weights.keys()].filter((k) => /layers\.[123]\.(self_attn|mlp)\./.test(k));
  const acc = new Map<string, Float64Array>();
  for (let j = 0; j < n; j++) {
    const x = tf.tensor2d(ids.data.subarray(j * T, (j + 1) * T) as Int32Array, [1, T], 'int32');
    const { grads } = await model.gradients(x, names);
    x.dispose();
    for (const [name, g] of grads) {
      const a = acc.get(name) ?? new Float64Array(g.data.length);
      for (let k = 0; k < a.length; k++) a[k] = a[k]! + g.data[k]! * g.data[k]!;
      acc.set(name, a);
    }
  }
  model.dispose();
  for (const [name, a] of acc) fisher.set(name, mat({ shape: loaded.weights.get(name)!.shape, data: a.map((v) => v / n) }));
  bench = new StageBench({ base: MODEL }, calibDataset);
  await bench.run(group, 'groups', { model: 'base', mode: 'block', attention: { layers: [1, 4] }, mlp: { layers: [1, 4] } });
});

const source = (): Source => ({
  w: (n) => mat(weights.get(n)!),
  g: (n) => mat(fixture.get(`calib.grad.${n}`)!),
  f: (n) => fisher.get(n),
});

const plans: Record<string, Record<string, any>> = {}; // eslint-disable-line @typescript-eslint/no-explicit-any

async function pipeline(taylor: string): Promise<void> {
  await bench.run(score, `${taylor}-scores`, {
    groups: 'groups', importance: 'taylor', taylor, calibration: { dataset: 'calib', samples: 10, seq_len: 64, sampling: 'sequential' },
  });
  await bench.run(aggregate, `${taylor}-importance`, { scores: `${taylor}-scores`, reduce: 'sum', normalize: 'none' });
  plans[taylor] = {};
  for (const ratio of [0.25, 0.5]) {
    const out = await bench.run(prune, `${taylor}-${ratio}`, { importance: `${taylor}-importance`, ratio });
    plans[taylor]![ratio] = readJson(join(out, 'plan.json'));
  }
}

for (const taylor of ['param_second', 'param_mix', 'param_first'] as const) {
  test(`taylor ${taylor}: kept sets equal the float64 reference`, async (t) => {
    if (missing) return t.skip(`missing ${missing}`);
    await pipeline(taylor);
    for (const ratio of [0.25, 0.5]) {
      for (const layer of PRUNED_LAYERS) {
        const got = plans[taylor]![ratio].layers[String(layer)];
        assert.deepEqual(got.attention.keep_kv_heads, keep(kvGroupScores(taylor as Kind, source(), layer, 8, 4, 8), ratio), `${taylor} ${ratio} layer ${layer} KV`);
        assert.deepEqual(got.mlp.keep, keep(mlpChannelScores(taylor as Kind, source(), layer, 172), ratio), `${taylor} ${ratio} layer ${layer} MLP`);
      }
    }
  });
}

test('param_mix differs from param_first only where the second-order term changes the ranking', (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  let differing = 0;
  for (const ratio of [0.25, 0.5]) {
    for (const layer of PRUNED_LAYERS) {
      for (const [part, ref] of [
        ['attention', (k: Kind) => keep(kvGroupScores(k, source(), layer, 8, 4, 8), ratio)],
        ['mlp', (k: Kind) => keep(mlpChannelScores(k, source(), layer, 172), ratio)],
      ] as const) {
        const field = part === 'attention' ? 'keep_kv_heads' : 'keep';
        const first = plans.param_first![ratio].layers[String(layer)][part][field];
        const mix = plans.param_mix![ratio].layers[String(layer)][part][field];
        const refSame = JSON.stringify(ref('param_first')) === JSON.stringify(ref('param_mix'));
        assert.equal(JSON.stringify(first) === JSON.stringify(mix), refSame, `ratio ${ratio} layer ${layer} ${part}`);
        if (!refSame) differing++;
      }
    }
  }
  t.diagnostic(`groups where param_mix and param_first keep different units: ${differing} of 12`);
});
