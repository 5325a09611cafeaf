// The pruning stages beyond local block pruning, on stories260K with l2 importance (no gradients needed):
// channel and layer modes, global scope with normalization, target_params, round_to, and input checks.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { countParameters } from '../../src/model/config.js';
import { loadModel } from '../../src/model/index.js';
import group from '../../src/stages/group.js';
import score from '../../src/stages/score.js';
import aggregate from '../../src/stages/aggregate.js';
import prune from '../../src/stages/prune.js';
import { StageBench } from './stage-context.js';
import { MODEL, calibDataset, missingShared, readJson } from './stories260k-helpers.js';

const missing = missingShared();
let bench: StageBench;

before(async () => {
  if (missing) return;
  bench = new StageBench({ base: MODEL }, calibDataset);
  await bench.run(group, 'block', { model: 'base', mode: 'block', attention: { layers: [1, 4] }, mlp: { layers: [1, 4] } });
  await bench.run(score, 'block-scores', { groups: 'block', importance: 'l2' });
});

test('every stage output carries the model reference and is read from disk by the next stage', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  const g = readJson(join(bench.outputs.get('block')!, 'groups.json'));
  assert.equal(g.model, 'base');
  assert.deepEqual(g.groups.map((x: { id: string }) => x.id), ['layers.1.attention', 'layers.1.mlp', 'layers.2.attention', 'layers.2.mlp', 'layers.3.attention', 'layers.3.mlp']);
  const s = readJson(join(bench.outputs.get('block-scores')!, 'scores.json'));
  assert.equal(s.model, 'base');
  assert.deepEqual(Object.keys(s.tensors['layers.1.attention']), ['k_proj', 'q_proj', 'v_proj', 'o_proj']);
  await bench.run(aggregate, 'imp', { scores: 'block-scores', reduce: 'sum', normalize: 'none' });
  const imp = readJson(join(bench.outputs.get('imp')!, 'importance.json'));
  assert.equal(imp.model, 'base');
  assert.equal(imp.layers['2'].attention.length, 4);
  assert.equal(imp.layers['2'].mlp.length, 172);
  for (const id of ['block', 'block-scores', 'imp']) {
    assert.ok(readdirSync(bench.outputs.get(id)!).every((f) => !f.includes('.tmp-')), 'no temporary files left');
  }
  // A stage pointed at the wrong kind of upstream directory fails with a user error.
  await assert.rejects(bench.run(prune, 'wrong', { importance: 'block-scores', ratio: 0.25 }), (e: { code?: string }) => e.code === 'LP4007');
  await assert.rejects(bench.run(prune, 'both', { importance: 'imp', ratio: 0.25, target_params: 100000 }), (e: { code?: string }) => e.code === 'LP4009');
});

test('global scope ranks units across layers; normalization changes the outcome; round_to rounds MLP widths', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  await bench.run(aggregate, 'imp-max', { scores: 'block-scores', reduce: 'sum', normalize: 'max' });
  const raw = readJson(join(await bench.run(prune, 'g-raw', { importance: 'imp', ratio: 0.25, scope: 'global' }), 'plan.json'));
  const norm = readJson(join(await bench.run(prune, 'g-max', { importance: 'imp-max', ratio: 0.25, scope: 'global' }), 'plan.json'));
  const units = (p: any) => [1, 2, 3].reduce((n, l) => n + p.layers[l].attention.keep_kv_heads.length + p.layers[l].mlp.keep.length, 0); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(units(raw), Math.floor(3 * 176 * 0.75));
  assert.equal(units(norm), Math.floor(3 * 176 * 0.75));
  assert.notDeepEqual(raw.layers, norm.layers);
  const rounded = readJson(join(await bench.run(prune, 'r8', { importance: 'imp', ratio: 0.25, round_to: 8 }), 'plan.json'));
  for (const l of [1, 2, 3]) assert.equal(rounded.layers[l].mlp.intermediate_size, 136);
});

test('target_params: the smallest ratio whose pruned model fits the budget', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  const out = await bench.run(prune, 'budget', { importance: 'imp', target_params: 230000 });
  const plan = readJson(join(out, 'plan.json'));
  assert.ok(plan.params_after <= 230000);
  const m = await loadModel(join(out, 'model'));
  assert.equal(countParameters(m.config), plan.params_after);
  // The solved ratio is the smallest that fits: a slightly smaller one exceeds the budget.
  const ratio = bench.summaries.get('budget')!.ratio as number;
  const below = readJson(join(await bench.run(prune, 'below', { importance: 'imp', ratio: ratio - 1e-6 }), 'plan.json'));
  assert.ok(below.params_after > 230000, `ratio ${ratio}: ${plan.params_after}, just below: ${below.params_after}`);
  await assert.rejects(bench.run(prune, 'too-small', { importance: 'imp', target_params: 1000 }), (e: { code?: string }) => e.code === 'LP4008');
});

test('channel mode prunes the hidden dimension; layer mode removes decoder layers; both load back', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  await bench.run(group, 'ch', { model: 'base', mode: 'channel' });
  await bench.run(score, 'ch-scores', { groups: 'ch', importance: 'l1' });
  await bench.run(aggregate, 'ch-imp', { scores: 'ch-scores' });
  const chOut = await bench.run(prune, 'ch-pruned', { importance: 'ch-imp', ratio: 0.25 });
  const chPlan = readJson(join(chOut, 'plan.json'));
  assert.equal(chPlan.hidden.hidden_size, 48);
  assert.equal(chPlan.hidden.keep.length, 48);
  const ch = await loadModel(join(chOut, 'model'));
  assert.equal(ch.config.hiddenSize, 48);
  assert.equal(ch.config.headDim, 8);
  assert.equal(readJson(join(chOut, 'model/config.json')).head_dim, 8);

  await bench.run(group, 'ly', { model: 'base', mode: 'layer', layers: [1, 5] });
  await bench.run(score, 'ly-scores', { groups: 'ly', importance: 'l2' });
  await bench.run(aggregate, 'ly-imp', { scores: 'ly-scores' });
  const lyOut = await bench.run(prune, 'ly-pruned', { importance: 'ly-imp', ratio: 0.5 });
  const lyPlan = readJson(join(lyOut, 'plan.json'));
  assert.equal(lyPlan.keep_layers.length, 3);
  assert.equal(lyPlan.keep_layers[0], 0);
  const imp = readJson(join(bench.outputs.get('ly-imp')!, 'importance.json'));
  const ranked = [1, 2, 3, 4].sort((a, b) => imp.layers[b].layer[0] - imp.layers[a].layer[0]).slice(0, 2).sort();
  assert.deepEqual(lyPlan.keep_layers.slice(1), ranked);
  const ly = await loadModel(join(lyOut, 'model'));
  assert.equal(ly.config.numHiddenLayers, 3);
});
