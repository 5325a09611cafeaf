import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareRuns, formatComparison } from '../../src/run/compare.js';
import { formatRun, formatRuns } from '../../src/run/listing.js';
import { findRun, listRuns } from '../../src/run/provenance.js';
import { run } from '../../src/run/run.js';
import { Store } from '../../src/run/store.js';
import { fakeBackend, fakePlan, fakeStages, recipeText } from './fixtures/fake-pipeline.js';
import { workdir } from './fixtures/workdir.js';

const base = { planFn: fakePlan, stages: fakeStages, initBackend: fakeBackend };

test('show lists runs; compare shows the changed parameter and the metric deltas', async () => {
  const w = await workdir();
  const a = await run(w.recipe, base);
  await writeFile(w.recipe, recipeText({ ratio: 0.5 }));
  const b = await run(w.recipe, base);
  const store = new Store(join(w.dir, '.lopper'));
  const runs = await listRuns(store);
  assert.deepEqual(runs.map((r) => r.id), [a.runId, b.runId]);
  assert.match(formatRuns(runs), new RegExp(`${b.runId}.*ok.*2/3`));
  assert.match(formatRun(runs[1]!), /pruned\s+fake-gpu\s+ran/);

  const ra = await findRun(store, 'latest~1');
  const rb = await findRun(store, b.runId.slice(0, 18));
  assert.equal(ra.id, a.runId);
  const c = compareRuns(ra, rb);
  assert.deepEqual(c.params, [{ path: 'pruned.ratio', a: 0.25, b: 0.5 }]);
  const ppl = c.metrics.find((m) => m.path === 'report.models.pruned.perplexity.stories')!;
  const pa = (ra.metrics.report as any).models.pruned.perplexity.stories;
  const pb = (rb.metrics.report as any).models.pruned.perplexity.stories;
  assert.notEqual(pa, pb);
  assert.equal(ppl.delta, pb - pa);
  const text = formatComparison(c);
  assert.match(text, /pruned\.ratio\s+0\.25\s+0\.5/);
  assert.match(text, /report\.models\.pruned\.perplexity\.stories\s+\S+\s+\S+\s+[+-]\d/);
});

test('with a recipe, show and compare see only that recipe’s runs of a shared store', async () => {
  const w = await workdir();
  const first = await run(w.recipe, base);
  const other = join(w.dir, 'other.yaml');
  await writeFile(other, recipeText({ ratio: 0.5 }));
  const second = await run(other, base);
  const store = new Store(join(w.dir, '.lopper'));
  assert.deepEqual((await listRuns(store)).map((r) => r.id), [first.runId, second.runId]);
  assert.deepEqual((await listRuns(store, w.recipe)).map((r) => r.id), [first.runId]);
  assert.deepEqual((await listRuns(store, other)).map((r) => r.id), [second.runId]);
  assert.equal((await findRun(store, 'latest', w.recipe)).id, first.runId);
  await assert.rejects(findRun(store, 'latest~1', other), /no run "latest~1"/);
});
