import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { LopperError } from '../../src/errors/lopper-error.js';
import { watch, type WatchEvent } from '../../src/run/watch.js';
import { fakeBackend, fakePlan, fakeStages, recipeText } from './fixtures/fake-pipeline.js';
import { workdir } from './fixtures/workdir.js';

function collector() {
  const events: WatchEvent[] = [];
  const waiters: Array<{ pred: (e: WatchEvent) => boolean; resolve: (e: WatchEvent) => void }> = [];
  const onEvent = (e: WatchEvent) => {
    events.push(e);
    for (const w of waiters.splice(0)) {
      if (w.pred(e)) w.resolve(e);
      else waiters.push(w);
    }
  };
  const next = <T extends WatchEvent>(pred: (e: WatchEvent) => boolean, timeoutMs = 10_000): Promise<T> => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timed out waiting for a watch event')), timeoutMs);
    waiters.push({ pred, resolve: (e) => { clearTimeout(t); resolve(e as T); } });
  });
  return { events, onEvent, next };
}

test('watch: a saved ratio change starts prune within 300 ms and never reruns score; edits cancel stale stages; broken edits keep results', { timeout: 60_000 }, async () => {
  const w = await workdir({ sleepMs: 40 });
  const c = collector();
  const out = new PassThrough();
  let text = '';
  out.on('data', (d) => { text += d; });
  const h = watch(w.recipe, { planFn: fakePlan, stages: fakeStages, initBackend: fakeBackend, onEvent: c.onEvent, keys: false, out, debounceMs: 50 });
  try {
    const first = await c.next<Extract<WatchEvent, { type: 'run-end' }>>((e) => e.type === 'run-end');
    assert.equal(first.result.status, 'ok');
    const startsBefore = c.events.filter((e) => e.type === 'stage-start').length;
    assert.equal(startsBefore, 5);

    // 1. Save a changed ratio: prune starts within 300 ms; scores is never rerun.
    const latencies: number[] = [];
    for (const ratio of [0.5, 0.375, 0.125]) {
      const started = c.next<Extract<WatchEvent, { type: 'stage-start' }>>((e) => e.type === 'stage-start' && e.id === 'pruned');
      const t0 = performance.now();
      await writeFile(w.recipe, recipeText({ ratio, sleepMs: 40 }));
      latencies.push((await started).at - t0);
      const end = await c.next<Extract<WatchEvent, { type: 'run-end' }>>((e) => e.type === 'run-end');
      assert.equal(end.result.status, 'ok');
      assert.equal(end.result.stages.pruned!.status, 'ran');
      assert.equal(end.result.stages.scores!.status, 'cached');
    }
    assert.ok(Math.max(...latencies) < 300, `latencies ${latencies.map((x) => x.toFixed(0)).join(', ')} ms`);
    assert.equal(c.events.filter((e) => e.type === 'stage-start' && (e.id === 'scores' || e.id === 'groups')).length, 2);

    // 2. Change the ratio while prune is running with the old one: the stale prune is cancelled, the new one runs.
    const slowStart = c.next((e) => e.type === 'stage-start' && e.id === 'pruned');
    await writeFile(w.recipe, recipeText({ ratio: 0.6, sleepMs: 40 }).replace('ratio: 0.6, sleepMs: 40', 'ratio: 0.6, sleepMs: 3000'));
    await slowStart;
    const cancelled = c.next<Extract<WatchEvent, { type: 'cancelled' }>>((e) => e.type === 'cancelled');
    await writeFile(w.recipe, recipeText({ ratio: 0.7, sleepMs: 40 }));
    assert.deepEqual((await cancelled).stages, ['pruned']);
    const done = await c.next<Extract<WatchEvent, { type: 'run-end' }>>((e) => e.type === 'run-end' && e.result.status === 'ok');
    assert.equal(done.result.plan.stages.find((s) => s.id === 'pruned')!.params.ratio, 0.7);

    // 3. A broken edit reports its location and keeps the last good results.
    const good = h.lastResult();
    const invalid = c.next<Extract<WatchEvent, { type: 'invalid' }>>((e) => e.type === 'invalid');
    await writeFile(w.recipe, 'name: broken\nstages: { groups: [\n');
    const err = (await invalid).error;
    assert.ok(err instanceof LopperError && err.location?.line !== undefined);
    assert.equal(h.lastResult(), good);
    assert.match(text, /recipe\.yaml:\d+:\d+:? error\[LP1001\]/);
    assert.match(text, /keeping the last good results/);

    // 4. f forces the last stage that ran.
    await writeFile(w.recipe, recipeText({ ratio: 0.7, sleepMs: 40 }));
    const fixed = await c.next<Extract<WatchEvent, { type: 'run-end' }>>((e) => e.type === 'run-end');
    assert.ok(Object.values(fixed.result.stages).every((s) => s.status === 'cached'));
    const forced = c.next<Extract<WatchEvent, { type: 'run-end' }>>((e) => e.type === 'run-end');
    await h.rerun(true);
    const f = await forced;
    assert.deepEqual(Object.entries(f.result.stages).filter(([, s]) => s.status === 'ran').map(([id]) => id), ['report']);
  } finally {
    await h.close();
  }
});

test('watch: an edit that leaves the stage in flight valid does not cancel it; it is computed once and reused', { timeout: 30_000 }, async () => {
  const w = await workdir({ sleepMs: 20, scoreSleepMs: 1200 });
  const c = collector();
  const h = watch(w.recipe, { planFn: fakePlan, stages: fakeStages, initBackend: fakeBackend, onEvent: c.onEvent, keys: false, out: new PassThrough(), debounceMs: 30 });
  try {
    await c.next((e) => e.type === 'stage-start' && e.id === 'scores');
    await writeFile(w.recipe, recipeText({ ratio: 0.5, sleepMs: 20, scoreSleepMs: 1200 }));
    const end = await c.next<Extract<WatchEvent, { type: 'run-end' }>>((e) => e.type === 'run-end' && e.result.status === 'ok');
    assert.equal(end.result.plan.stages.find((s) => s.id === 'pruned')!.params.ratio, 0.5);
    assert.equal(c.events.filter((e) => e.type === 'cancelled').length, 0);
    assert.equal(c.events.filter((e) => e.type === 'stage-start' && e.id === 'scores').length, 1);
    assert.equal(end.result.stages.scores!.status, 'cached');
    // The first run stopped after scores: its prune with ratio 0.25 never started.
    const prunes = c.events.filter((e): e is Extract<WatchEvent, { type: 'stage-start' }> => e.type === 'stage-start' && e.id === 'pruned');
    assert.equal(prunes.length, 1);
  } finally {
    await h.close();
  }
});
