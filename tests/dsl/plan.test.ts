// The planner: deterministic plans, cache keys that change exactly downstream of a changed input, references
// rewritten to instance ids, matrix expansion carried downstream, the files each stage reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { plan, validate, LopperErrors } from '../../src/index.js';
import type { Plan } from '../../src/index.js';

const versions = new Map(['group', 'score', 'aggregate', 'prune', 'lora-finetune', 'train', 'evaluate'].map((k) => [k, '1']));

function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lopper-plan-'));
  mkdirSync(join(dir, 'model'));
  writeFileSync(join(dir, 'model', 'config.json'), JSON.stringify({ num_hidden_layers: 4, hidden_size: 8 }));
  writeFileSync(join(dir, 'model', 'model.safetensors'), 'weights');
  writeFileSync(join(dir, 'model', 'tokenizer.json'), '{}');
  writeFileSync(join(dir, 'model', 'generation_config.json'), '{}');
  writeFileSync(join(dir, 'text.txt'), 'some text\n');
  writeFileSync(join(dir, 'mc.jsonl'), '{"question":"q","choices":["a","b"],"label":0}\n');
  return dir;
}

const RECIPE = `# yaml-language-server: $schema=../schema/pipeline.schema.json
version: 1
name: keys
seed: 42
vars: { ratio: 0.25 }
models:
  base: { path: model }
datasets:
  text: { path: text.txt, format: text }
  mc: { path: mc.jsonl, format: multiple-choice, template: arc_easy }
stages:
  groups: { kind: group, model: base, attention: { layers: [1, 3] }, mlp: { layers: [1, 3] } }
  scores: { kind: score, groups: groups, calibration: { dataset: text, samples: 4, seq_len: 8 } }
  importance: { kind: aggregate, scores: scores }
  pruned: { kind: prune, importance: importance, ratio: "\${vars.ratio}", description: first try }
  tuned: { kind: lora-finetune, model: pruned, dataset: text, train: { max_steps: 2 } }
  report: { kind: evaluate, models: [base, pruned, tuned], zero_shot: { tasks: [{ dataset: mc }] } }
`;

function write(dir: string, text: string): string {
  const path = join(dir, 'recipe.yaml');
  writeFileSync(path, text);
  return path;
}

const keys = (p: Plan): Record<string, string> => Object.fromEntries(p.stages.map((s) => [s.id, s.key]));

function changed(a: Plan, b: Plan): string[] {
  const ka = keys(a);
  const kb = keys(b);
  return Object.keys(ka).filter((id) => ka[id] !== kb[id]);
}

test('plan is deterministic: the same recipe gives byte-identical JSON', async () => {
  const path = write(workspace(), RECIPE);
  const a = JSON.stringify(await plan(path, { versions }));
  const b = JSON.stringify(await plan(path, { versions }));
  assert.equal(a, b);
});

test('changing a field changes the keys of that stage and everything downstream, nothing else', async () => {
  const path = write(workspace(), RECIPE);
  const base = await plan(path, { versions });
  assert.deepEqual(base.stages.map((s) => s.id), ['groups', 'scores', 'importance', 'pruned', 'tuned', 'report']);
  assert.deepEqual(changed(base, await plan(path, { versions, set: ['vars.ratio=0.5'] })), ['pruned', 'tuned', 'report']);
  assert.deepEqual(changed(base, await plan(path, { versions, set: ['stages.scores.calibration.samples=8'] })), ['scores', 'importance', 'pruned', 'tuned', 'report']);
  assert.deepEqual(changed(base, await plan(path, { versions, set: ['stages.tuned.train.lr=0.001'] })), ['tuned', 'report']);
  assert.deepEqual(changed(base, await plan(path, { versions, set: ['stages.report.zero_shot.tasks.0.limit=10'] })), ['report']);
  // A default written out explicitly is the same recipe.
  assert.deepEqual(changed(base, await plan(path, { versions, set: ['stages.importance.reduce=sum'] })), []);
  // Descriptions are not part of any key.
  assert.deepEqual(changed(base, await plan(path, { versions, set: ['stages.pruned.description=second try'] })), []);
  // Seed and numerics reach every stage.
  assert.equal(changed(base, await plan(path, { versions, set: ['seed=1'] })).length, 6);
  assert.equal(changed(base, await plan(path, { versions, backend: 'cpu' })).length, 6);
  // A new implementation version of one stage kind.
  const bumped = new Map(versions).set('prune', '2');
  assert.deepEqual(changed(base, await plan(path, { versions: bumped })), ['pruned', 'tuned', 'report']);
});

test('file contents enter the keys of the stages that read them (and their downstream)', async () => {
  const dir = workspace();
  const path = write(dir, RECIPE);
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const calls: string[] = [];
  const hashFile = (edited: string | undefined) => async (p: string) => {
    calls.push(p);
    return sha(p === edited ? 'edited' : p);
  };
  const base = await plan(path, { versions, hashFile: hashFile(undefined) });
  assert.ok(calls.every((p) => p.startsWith(dir)), 'hashFile gets absolute paths');
  assert.equal(new Set(calls).size, calls.length, 'each file is hashed once per plan');
  assert.deepEqual(changed(base, await plan(path, { versions, hashFile: hashFile(join(dir, 'mc.jsonl')) })), ['report']);
  assert.deepEqual(changed(base, await plan(path, { versions, hashFile: hashFile(join(dir, 'text.txt')) })), ['scores', 'importance', 'pruned', 'tuned', 'report']);
  assert.equal(changed(base, await plan(path, { versions, hashFile: hashFile(join(dir, 'model', 'model.safetensors')) })).length, 6);
  // generation_config.json is not read by any stage.
  assert.deepEqual(changed(base, await plan(path, { versions, hashFile: hashFile(join(dir, 'model', 'generation_config.json')) })), []);
});

test('planned stages list the files they read, their models and datasets, and their inputs', async () => {
  const dir = workspace();
  const p = await plan(write(dir, RECIPE), { versions });
  const [groups, scores, , pruned, tuned, report] = p.stages;
  assert.deepEqual(groups!.files, ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(dir, 'model', f)));
  assert.deepEqual(groups!.models, { base: join(dir, 'model') });
  assert.deepEqual(scores!.files.at(-1), join(dir, 'text.txt'));
  assert.deepEqual(scores!.datasets.text, { name: 'text', path: join(dir, 'text.txt'), format: 'text', options: { field: 'text' } });
  assert.deepEqual(pruned!.dependsOn, ['importance']);
  assert.deepEqual(tuned!.dependsOn, ['pruned']);
  assert.deepEqual(tuned!.files, [join(dir, 'text.txt')]);
  assert.deepEqual(report!.dependsOn, ['pruned', 'tuned']);
  assert.equal(report!.datasets.mc!.template, 'arc_easy');
  assert.equal(report!.outputKind, 'metrics');
  assert.deepEqual(Object.keys(report!.keyInputs).sort(), ['datasets', 'inputs', 'kind', 'models', 'numerics', 'params', 'seed', 'version']);
  assert.deepEqual(report!.keyInputs.inputs, { pruned: pruned!.key, tuned: tuned!.key });
  assert.equal(p.store, join(dir, '.lopper'));
});

test('matrix stages expand downstream stages, with references rewritten to instance ids', async () => {
  const dir = workspace();
  const text = RECIPE.replace('ratio: "${vars.ratio}", description: first try', 'ratio: "${matrix.ratio}", matrix: { ratio: [0.25, 0.5] }');
  const p = await plan(write(dir, text), { versions });
  assert.deepEqual(p.stages.map((s) => s.id), [
    'groups', 'scores', 'importance', 'pruned@ratio=0.25', 'pruned@ratio=0.5',
    'tuned@ratio=0.25', 'tuned@ratio=0.5', 'report@ratio=0.25', 'report@ratio=0.5',
  ]);
  const byId = new Map(p.stages.map((s) => [s.id, s]));
  assert.equal(byId.get('pruned@ratio=0.5')!.params.ratio, 0.5);
  assert.equal(byId.get('pruned@ratio=0.5')!.params.importance, 'importance');
  assert.deepEqual(byId.get('pruned@ratio=0.5')!.matrix, { ratio: 0.5 });
  assert.equal(byId.get('pruned@ratio=0.5')!.name, 'pruned');
  assert.equal(byId.get('tuned@ratio=0.5')!.params.model, 'pruned@ratio=0.5');
  assert.deepEqual(byId.get('report@ratio=0.25')!.params.models, ['base', 'pruned@ratio=0.25', 'tuned@ratio=0.25']);
  assert.deepEqual(byId.get('report@ratio=0.25')!.dependsOn, ['pruned@ratio=0.25', 'tuned@ratio=0.25']);
  assert.deepEqual(byId.get('report@ratio=0.25')!.stageRefs, { 'pruned@ratio=0.25': 'pruned@ratio=0.25', 'tuned@ratio=0.25': 'tuned@ratio=0.25' });
  // Instances share upstream keys; the unexpanded stages are the same as without the matrix.
  const single = await plan(write(dir, RECIPE), { versions });
  assert.equal(byId.get('importance')!.key, single.stages[2]!.key);
  assert.equal(byId.get('pruned@ratio=0.25')!.params.ratio, 0.25);
});

test('a llama2.c header gives the layer count for layer-range checks; missing files fail plan but only warn validate', async () => {
  const dir = workspace();
  const header = Buffer.alloc(28);
  [8, 16, 3, 2, 2, 32, 64].forEach((v, i) => header.writeInt32LE(v, i * 4));
  writeFileSync(join(dir, 'tiny.bin'), header);
  writeFileSync(join(dir, 'tok32.bin'), 'tok');
  const path = write(dir, `version: 1
name: l2c
models:
  base: { path: tiny.bin }
  gone: { path: missing-dir }
stages:
  groups: { kind: group, model: base, mode: channel, layers: [0, 4] }
`);
  const v = await validate(path);
  assert.deepEqual(v.errors.map((e) => `${e.code} ${e.location?.line}:${e.location?.column}`), ['LP2007 7:62']);
  assert.match(v.errors[0]!.message, /model "base" has 3 layers/);
  writeFileSync(path, `version: 1
name: l2c
models:
  base: { path: tiny.bin }
  gone: { path: missing-dir }
stages:
  groups: { kind: group, model: base, mode: channel, layers: [0, 3] }
`);
  const ok = await validate(path);
  assert.ok(ok.ok);
  assert.deepEqual(ok.warnings.map((w) => `${w.code} ${w.location?.line}:${w.location?.column}`), ['LP2008 5:17']);
  await assert.rejects(plan(path, { versions }), (e: unknown) => e instanceof LopperErrors && e.errors.map((x) => x.code).join() === 'LP2008');
  const p = await plan(path, { versions, set: ['models.gone.path=tiny.bin'] });
  assert.deepEqual(p.stages[0]!.files, [join(dir, 'tiny.bin'), join(dir, 'tok32.bin')]);
});

test('a tokenizer: kept elsewhere is in the files and keys of the stages that read the model, and in their modelRefs', async () => {
  const dir = workspace();
  mkdirSync(join(dir, 'tok'));
  writeFileSync(join(dir, 'tok', 'tokenizer.json'), '{"model":{}}');
  writeFileSync(join(dir, 'tok', 'tokenizer_config.json'), '{}');
  const header = Buffer.alloc(28);
  [8, 16, 3, 2, 2, 32, 256].forEach((v, i) => header.writeInt32LE(v, i * 4));
  writeFileSync(join(dir, 'tiny.bin'), header);
  writeFileSync(join(dir, 'tok', 'tok32.bin'), 'tok');
  const recipe = (hfTok: string, binTok: string) => `version: 1
name: tok
models:
  hf: { path: model, tokenizer: ${hfTok} }
  bin: { path: tiny.bin, tokenizer: ${binTok} }
datasets:
  text: { path: text.txt, format: text }
stages:
  groups: { kind: group, model: bin, mode: channel, layers: [0, 3] }
  report: { kind: evaluate, models: [hf, bin], perplexity: { datasets: [text] } }
`;
  const path = write(dir, recipe('tok/tokenizer.json', 'tok/tok32.bin'));
  const p = await plan(path, { versions });
  const report = p.stages.find((s) => s.id === 'report')!;
  for (const f of ['tok/tokenizer.json', 'tok/tokenizer_config.json', 'tok/tok32.bin']) assert.ok(report.files.includes(join(dir, f)), f);
  assert.deepEqual(report.modelRefs, {
    hf: { path: join(dir, 'model'), tokenizer: join(dir, 'tok', 'tokenizer.json') },
    bin: { path: join(dir, 'tiny.bin'), tokenizer: join(dir, 'tok', 'tok32.bin') },
  });
  const models = report.keyInputs.models as Record<string, { files: Record<string, string> }>;
  assert.deepEqual(Object.keys(models.hf!.files).sort(), ['config.json', 'model.safetensors', 'tokenizer', 'tokenizer.json', 'tokenizer_config'].sort());
  assert.deepEqual(Object.keys(models.bin!.files).sort(), ['model', 'tokenizer']);
  // A directory works as the tokenizer too (its tokenizer.json); editing the tokenizer changes the keys.
  const byDir = await plan(write(dir, recipe('tok', 'tok/tok32.bin')), { versions });
  assert.deepEqual(keys(byDir), keys(p));
  writeFileSync(join(dir, 'tok', 'tokenizer.json'), '{"model":{"vocab":{}}}');
  assert.deepEqual(changed(p, await plan(path, { versions })), ['report']);
  // A missing tokenizer fails the plan at the entry's tokenizer field.
  const text = recipe('tok/none.json', 'tok/tok32.bin');
  write(dir, text);
  const col = text.split('\n')[3]!.indexOf('tok/none.json') + 1;
  await assert.rejects(plan(path, { versions }), (e: unknown) => e instanceof LopperErrors
    && e.errors.map((x) => `${x.code} ${x.location?.line}:${x.location?.column}`).join() === `LP2008 4:${col}`);
});
