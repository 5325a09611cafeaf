import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LopperError } from '../../src/errors/lopper-error.js';
import { run, resolvePlan } from '../../src/run/run.js';
import { Store } from '../../src/run/store.js';
import { explainStages } from '../../src/run/plan-report.js';
import { fakeBackend, fakePlan, fakeStages, recipeText, resetTrace, trace } from './fixtures/fake-pipeline.js';
import { workdir } from './fixtures/workdir.js';

const base = { planFn: fakePlan, stages: fakeStages, initBackend: fakeBackend };
const statuses = (r: { stages: Record<string, { status: string }> }) => Object.fromEntries(Object.entries(r.stages).map(([k, v]) => [k, v.status]));

test('second run of an unchanged recipe runs nothing and is fast; ratio change reruns prune and downstream only', async () => {
  const w = await workdir();
  const first = await run(w.recipe, base);
  assert.deepEqual(statuses(first), { groups: 'ran', scores: 'ran', importance: 'ran', pruned: 'ran', report: 'ran' });
  for (const s of Object.values(first.stages)) assert.ok(existsSync(join(s.output, 'out.txt')), s.id);

  const t = performance.now();
  const second = await run(w.recipe, base);
  const ms = performance.now() - t;
  assert.deepEqual(new Set(Object.values(statuses(second))), new Set(['cached']));
  assert.ok(ms < 1000, `cached rerun took ${ms} ms`);
  assert.deepEqual(Object.fromEntries(Object.entries(second.stages).map(([k, v]) => [k, v.output])),
    Object.fromEntries(Object.entries(first.stages).map(([k, v]) => [k, v.output])));

  await writeFile(w.recipe, recipeText({ ratio: 0.5 }));
  const plan = await resolvePlan(w.recipe, base);
  const expl = await explainStages(plan, new Store(join(w.dir, '.lopper')));
  const why = Object.fromEntries(expl.map((e) => [e.id, e.action === 'cached' ? 'cached' : e.reasons.join('; ')]));
  assert.deepEqual(why, { groups: 'cached', scores: 'cached', importance: 'cached', pruned: 'params.ratio 0.25 -> 0.5', report: 'upstream pruned key changed' });

  const third = await run(w.recipe, base);
  assert.deepEqual(statuses(third), { groups: 'cached', scores: 'cached', importance: 'cached', pruned: 'ran', report: 'ran' });
  // Going back to the old ratio restores the old results instantly (run-cache).
  await writeFile(w.recipe, recipeText({ ratio: 0.25 }));
  const fourth = await run(w.recipe, base);
  assert.deepEqual(new Set(Object.values(statuses(fourth))), new Set(['cached']));
});

test('explain names a changed input file and a changed numerics setting', async () => {
  const w = await workdir();
  await run(w.recipe, base);
  await writeFile(w.calib, 'a different calibration text\n');
  const past = new Date(Date.now() - 30_000);
  await utimes(w.calib, past, past);
  const store = new Store(join(w.dir, '.lopper'));
  const expl = await explainStages(await resolvePlan(w.recipe, base), store);
  assert.deepEqual(expl.find((e) => e.id === 'groups')!.reasons, [`file ${w.calib} changed`]);
  assert.deepEqual(expl.find((e) => e.id === 'scores')!.reasons, [`file ${w.calib} changed`, 'upstream groups key changed']);
  const wasm = await explainStages(await resolvePlan(w.recipe, { ...base, backend: 'wasm' }), store);
  assert.ok(wasm.find((e) => e.id === 'importance')!.reasons.includes('backend cpu -> wasm'), JSON.stringify(wasm.find((e) => e.id === 'importance')!.reasons));
});

test('--dry-run writes nothing and reports exactly what would run; --force, --only and --from select stages', async () => {
  const w = await workdir();
  const dry = await run(w.recipe, { ...base, dryRun: true });
  assert.equal(dry.status, 'dry-run');
  assert.deepEqual(new Set(Object.values(statuses(dry))), new Set(['will run']));
  assert.equal(dry.decisions[0]!.reasons[0], 'never ran: no stored output for this stage');
  assert.equal(existsSync(join(w.dir, '.lopper', 'out')), false);

  const only = await run(w.recipe, { ...base, only: ['importance'] });
  assert.deepEqual(statuses(only), { groups: 'ran', scores: 'ran', importance: 'ran', pruned: 'skipped', report: 'skipped' });
  const dry2 = await run(w.recipe, { ...base, dryRun: true });
  assert.deepEqual(statuses(dry2), { groups: 'cached', scores: 'cached', importance: 'cached', pruned: 'will run', report: 'will run' });

  await run(w.recipe, base);
  const from = await run(w.recipe, { ...base, from: 'importance' });
  assert.deepEqual(statuses(from), { groups: 'cached', scores: 'cached', importance: 'ran', pruned: 'ran', report: 'ran' });
  const forced = await run(w.recipe, { ...base, force: ['scores'] });
  assert.deepEqual(statuses(forced), { groups: 'cached', scores: 'ran', importance: 'cached', pruned: 'cached', report: 'cached' });
  assert.equal(forced.decisions.find((d) => d.id === 'scores')!.reasons[0], 'forced (--force)');
  const all = await run(w.recipe, { ...base, force: true });
  assert.deepEqual(new Set(Object.values(statuses(all))), new Set(['ran']));
  // A forced rerun replaces the output in place and leaves no temp dirs.
  assert.deepEqual(await readdir(join(w.dir, '.lopper', 'tmp')), []);
  await assert.rejects(run(w.recipe, { ...base, only: ['nope'] }), (e: unknown) => e instanceof LopperError && e.code === 'LP7001');
});

test('independent CPU stages run in parallel; device stages never overlap', async () => {
  const w = await workdir();
  await writeFile(w.recipe, `name: par
runtime: { backend: cpu }
stages:
  a: { kind: fake-cpu, sleepMs: 150 }
  b: { kind: fake-cpu, sleepMs: 150, variant: b }
  g1: { kind: fake-gpu, sleepMs: 80 }
  g2: { kind: fake-gpu, sleepMs: 80, variant: g2 }
  g3: { kind: fake-gpu, needs: [a, b], sleepMs: 40 }
`);
  resetTrace();
  const r = await run(w.recipe, { ...base, jobs: 2 });
  assert.equal(r.status, 'ok');
  assert.equal(trace.maxActive.cpu, 2, 'a and b overlapped');
  assert.equal(trace.maxActive.device, 1, 'g1, g2, g3 never overlapped');
  const span = (id: string) => trace.events.filter((e) => e.id === id).map((e) => e.t);
  const [g1, g2] = [span('g1'), span('g2')];
  assert.ok(g1[1]! <= g2[0]! || g2[1]! <= g1[0]!, 'device stages ran one after the other');
  const [a, b] = [span('a'), span('b')];
  assert.ok(a[0]! < b[1]! && b[0]! < a[1]!, 'CPU stages ran at the same time');
});

test('a failing stage stops its downstream, leaves no temp dir and reports LP7002; an aborted run resumes', async () => {
  const w = await workdir();
  await writeFile(w.recipe, recipeText().replace('reduce: sum,', 'reduce: sum, fail: true,'));
  await assert.rejects(run(w.recipe, base), (e: unknown) => {
    assert.ok(e instanceof LopperError && e.code === 'LP7002', String(e));
    const r = (e as unknown as { result: { stages: Record<string, { status: string }> } }).result;
    assert.deepEqual(statuses(r), { groups: 'ran', scores: 'ran', importance: 'failed', pruned: 'not run', report: 'not run' });
    return true;
  });
  assert.deepEqual(await readdir(join(w.dir, '.lopper', 'tmp')), []);

  await writeFile(w.recipe, recipeText({ sleepMs: 200 }));
  const controller = new AbortController();
  resetTrace();
  const pending = run(w.recipe, { ...base, signal: controller.signal });
  const timer = setInterval(() => {
    if (trace.events.some((e) => e.id === 'importance' && e.what === 'start')) { controller.abort(); clearInterval(timer); }
  }, 5);
  await assert.rejects(pending, (e: unknown) => e instanceof LopperError && e.code === 'LP7006');
  assert.deepEqual(await readdir(join(w.dir, '.lopper', 'tmp')), []);
  const resumed = await run(w.recipe, base);
  assert.deepEqual(statuses(resumed), { groups: 'cached', scores: 'cached', importance: 'ran', pruned: 'ran', report: 'ran' });
});

test('two concurrent runs on one store compute every stage once', async () => {
  const w = await workdir({ sleepMs: 60 });
  resetTrace();
  const [a, b] = await Promise.all([run(w.recipe, base), run(w.recipe, base)]);
  const starts = trace.events.filter((e) => e.what === 'start').map((e) => e.id).sort();
  assert.deepEqual(starts, ['groups', 'importance', 'pruned', 'report', 'scores']);
  for (const id of Object.keys(a.stages)) assert.equal(a.stages[id]!.output, b.stages[id]!.output);
  const reused = [...Object.values(a.stages), ...Object.values(b.stages)].filter((s) => s.status === 'cached');
  assert.equal(reused.length, 5);
  assert.ok(reused.every((s) => s.reasons[0] === 'produced meanwhile by a concurrent run'));
});

test('run records carry provenance; the lockfile is deterministic; metrics are collected', async () => {
  const w = await workdir();
  const r1 = await run(w.recipe, { ...base, command: 'lopper run recipe.yaml' });
  const rec = JSON.parse(await readFile(r1.recordPath!, 'utf8'));
  for (const k of ['id', 'status', 'startedAt', 'finishedAt', 'wallMs', 'lopper', 'node', 'backend', 'seed', 'git', 'recipe', 'stages', 'peakRssBytes', 'metrics']) assert.ok(k in rec, k);
  assert.equal(rec.backend.backend, 'cpu');
  assert.equal(rec.backend.adapter, 'fake adapter');
  assert.equal(rec.node.version, process.version);
  assert.equal(rec.seed, 42);
  assert.equal(rec.recipe.resolved.stages.pruned.params.ratio, 0.25);
  assert.ok('commit' in rec.git && 'dirty' in rec.git);
  assert.ok(rec.stages.scores.wallMs >= 0 && rec.stages.scores.peakRssBytes > 0);
  assert.ok(typeof rec.metrics.report.models.pruned.perplexity.stories === 'number');
  const lock1 = await readFile(r1.lockfilePath!, 'utf8');
  assert.equal(r1.lockfilePath, join(w.dir, 'recipe.lock'));
  const r2 = await run(w.recipe, base);
  assert.equal(await readFile(r2.lockfilePath!, 'utf8'), lock1);
  const rec2 = JSON.parse(await readFile(r2.recordPath!, 'utf8'));
  assert.equal(rec2.backend.source, 'cached outputs');
  assert.equal(rec2.backend.backend, 'cpu');
  assert.match(lock1, /ratio: 0\.25/);
  assert.match(lock1, /calib\.txt: [0-9a-f]{64}/);
});

test('a stage resolves models and outputs of any stage upstream of it, and models: entries read elsewhere', async () => {
  const w = await workdir();
  await writeFile(w.recipe, `name: refs
runtime: { backend: cpu }
stages:
  base: { kind: fake-gpu }
  groups: { kind: fake-cpu, needs: [base] }
  scores: { kind: refs, needs: [groups] }
`);
  const seen: Record<string, string> = {};
  const refs = {
    kind: 'refs', version: '1', outputKind: 'scores' as const,
    async run(ctx: import('../../src/stages/types.js').StageContext) {
      seen.model = ctx.modelPath('base');
      // An upstream stage's model is keyed by that stage's cache key (what the residency shares it under).
      assert.deepEqual(ctx.model('base'), { path: seen.model, key: `stage:${seen.model.split('/').at(-2)}` });
      seen.groups = ctx.stageDir('groups');
      seen.base = ctx.stageDir('base');
      assert.throws(() => ctx.stageDir('scores'), (e: unknown) => e instanceof LopperError && e.code === 'LP7001');
      assert.throws(() => ctx.modelPath('nope'), (e: unknown) => e instanceof LopperError && e.code === 'LP7001');
    },
  };
  const r = await run(w.recipe, { ...base, stages: new Map([...fakeStages, ['refs', refs]]) });
  assert.equal(seen.model, `${r.stages.base!.output}/model`);
  assert.equal(seen.base, r.stages.base!.output);
  assert.equal(seen.groups, r.stages.groups!.output);
});
