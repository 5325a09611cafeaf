import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { formatDuration, formatProgress, ListrReporter, PlainReporter } from '../../src/run/progress.js';
import { run } from '../../src/run/run.js';
import type { RunReporter } from '../../src/run/types.js';
import { fakeBackend, fakePlan, fakeStages } from './fixtures/fake-pipeline.js';
import { workdir } from './fixtures/workdir.js';

const base = { planFn: fakePlan, stages: fakeStages, initBackend: fakeBackend };

test('progress lines carry phase, counts, percentage and ETA', () => {
  assert.equal(formatProgress({ phase: 'windows', done: 10, total: 40, etaMs: 12_300 }), 'windows 10/40 (25%) ETA 12.3s');
  assert.equal(formatProgress({ phase: 'steps', done: 40, total: 40, etaMs: 0 }), 'steps 40/40 (100%)');
  assert.equal(formatDuration(125_000), '2m05s');
});

test('the plain renderer prints one line per stage event; sub-progress reaches the reporter with an ETA', async () => {
  const w = await workdir();
  const out = new PassThrough();
  let text = '';
  out.on('data', (d) => { text += d; });
  const plain = new PlainReporter(out, 0);
  const etas: number[] = [];
  const reporter: RunReporter = {
    onDecisions: plain.onDecisions.bind(plain), onStageStart: plain.onStageStart.bind(plain), onStageEnd: plain.onStageEnd.bind(plain),
    onRunEnd: plain.onRunEnd.bind(plain),
    onStageProgress: (id, p) => { if (p.etaMs !== undefined) etas.push(p.etaMs); plain.onStageProgress(id, p); },
  };
  await run(w.recipe, { ...base, reporter });
  assert.match(text, /lopper: 5 stages — 5 to run, 0 cached/);
  assert.match(text, /▶ scores  running — never ran: no stored output for this stage/);
  assert.match(text, / {2}scores {2}steps 3\/5 \(60%\) ETA \d+ms/);
  assert.match(text, /✔ report  ran in \d+ms/);
  assert.match(text, /lopper: ok — 5 ran, 0 cached/);
  assert.ok(etas.length >= 20);
  text = '';
  await run(w.recipe, { ...base, reporter: plain });
  assert.match(text, /0 to run, 5 cached/);
  assert.equal(text.match(/✔ \w+ {2}cached/g)?.length, 5);
});

test('the listr2 reporter renders one task per stage and finishes with the run', async () => {
  const w = await workdir();
  const listr = new ListrReporter('silent');
  const r = await run(w.recipe, { ...base, reporter: listr });
  await listr.finished();
  assert.equal(r.status, 'ok');
  const again = new ListrReporter('silent');
  await run(w.recipe, { ...base, reporter: again });
  await again.finished();
});
