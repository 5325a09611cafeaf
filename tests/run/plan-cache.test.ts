import assert from 'node:assert/strict';
import { utimes, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import type { Plan } from '../../src/plan/types.js';
import type { PlanOptions } from '../../src/run/planner.js';
import { resolvePlan, run } from '../../src/run/run.js';
import { fakeBackend, fakePlan, fakeStages, recipeText } from './fixtures/fake-pipeline.js';
import { workdir } from './fixtures/workdir.js';

test('a stored plan is reused only while the recipe, the options and every input file are unchanged', async () => {
  const w = await workdir();
  let calls = 0;
  const planFn = (p: string, o: PlanOptions): Promise<Plan> => { calls++; return fakePlan(p, o); };
  const opts = { planFn, planCache: true, stages: fakeStages, initBackend: fakeBackend };
  const age = async (path: string, s = 30) => { const t = new Date(Date.now() - s * 1000); await utimes(path, t, t); };
  await age(w.recipe);

  const p1 = await resolvePlan(w.recipe, opts);
  assert.equal(calls, 1);
  const p2 = await resolvePlan(w.recipe, opts);
  assert.equal(calls, 1, 'unchanged: the stored plan is used');
  assert.deepEqual(p2, p1);
  const r = await run(w.recipe, opts);
  assert.equal(calls, 1);
  assert.equal(r.status, 'ok');

  await resolvePlan(w.recipe, { ...opts, set: ['vars.x=1'] });
  assert.equal(calls, 2, 'other --set: another entry');
  await resolvePlan(w.recipe, { ...opts, backend: 'wasm' });
  assert.equal(calls, 3, 'other backend: another entry');

  await age(w.calib, 20);
  await resolvePlan(w.recipe, opts);
  assert.equal(calls, 4, 'an input file whose mtime changed: replanned');
  await resolvePlan(w.recipe, opts);
  assert.equal(calls, 4);

  await writeFile(w.recipe, recipeText({ ratio: 0.5 }));
  const p3 = await resolvePlan(w.recipe, opts);
  assert.equal(calls, 5, 'recipe text changed: replanned');
  assert.equal(p3.stages.find((s) => s.id === 'pruned')!.params.ratio, 0.5);
  await resolvePlan(w.recipe, opts);
  assert.equal(calls, 6, 'a recipe written within the last second is not trusted by its stat: replanned');
  await age(w.recipe);
  await resolvePlan(w.recipe, opts);
  await resolvePlan(w.recipe, opts);
  assert.equal(calls, 7);
});
