// evaluate's report.html draws on upstream stages whose model may still be writing when evaluate finishes
// (StageResult.pending): the page must wait for their commit and show what they stored (here a loss curve), while the
// evaluate-like stage itself still starts beside the write.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeStageReport } from '../../src/report/stage-report.js';
import { run } from '../../src/run/run.js';
import type { StageModule } from '../../src/stages/types.js';
import { fakeBackend, fakePlan } from '../run/fixtures/fake-pipeline.js';
import { workdir } from '../run/fixtures/workdir.js';

const events: string[] = [];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const trainLog = [{ step: 1, loss: 2.5, lr: 1e-3, tokens_per_second: 100 }, { step: 2, loss: 2.25, lr: 1e-3, tokens_per_second: 100 }, { step: 2, val_loss: 2.4 }];

// A model-producing stage: train.jsonl is written before it returns, the model after (as lora-finetune does).
const tuner: StageModule & { resource: 'device' } = {
  kind: 'lora-finetune', version: '1', outputKind: 'model', resource: 'device',
  async run(ctx) {
    await writeFile(join(ctx.outDir, 'train.jsonl'), trainLog.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const pending = (async () => {
      await sleep(200);
      await writeFile(join(ctx.outDir, 'model.bin'), 'weights');
      events.push('tuner committed soon');
    })();
    return { pending };
  },
};
// evaluate's ending: metrics.json, then the page as pending work.
const evaluator: StageModule & { resource: 'device' } = {
  kind: 'evaluate', version: '1', outputKind: 'metrics', resource: 'device', readsResidentModels: true,
  async run(ctx) {
    events.push('evaluate starts');
    const metrics = { models: { tuned: { params: 1000, perplexity: { text: 12.5 }, zero_shot: {}, tokens_per_second: 10 } } };
    await writeFile(join(ctx.outDir, 'metrics.json'), JSON.stringify(metrics));
    return { pending: writeStageReport(ctx) };
  },
};
const stages = new Map<string, StageModule>([tuner, evaluator].map((m) => [m.kind, m]));

test('evaluate starts beside the upstream write, and its report.html waits for the commit and holds the upstream loss curve', async () => {
  const w = await workdir();
  await writeFile(w.recipe, 'name: stage-report\nruntime: { backend: cpu }\nstages:\n  tuned: { kind: lora-finetune }\n  report: { kind: evaluate, needs: [tuned] }\n');
  events.length = 0;
  const result = await run(w.recipe, { planFn: fakePlan, stages, initBackend: fakeBackend });
  assert.equal(result.status, 'ok', String(result.failed?.error));
  assert.ok(events.indexOf('evaluate starts') < events.indexOf('tuner committed soon'), events.join(', '));
  const page = join(result.stages.report!.output, 'report.html');
  assert.ok(existsSync(page));
  const html = await readFile(page, 'utf8');
  // The loss chart of `tuned` with one point per train.jsonl record, and no "missing" note about it.
  assert.match(html, new RegExp(`<figure class="chart" data-points="${trainLog.length}"><figcaption>tuned \\(lora-finetune\\): loss per step`));
  assert.doesNotMatch(html, /data-panel="missing"/);
  assert.match(html, /<td data-key="perplexity.text" data-value="12.5">12.50<\/td>/);
  // Content-addressed output: no temp path or store path in the page.
  assert.doesNotMatch(html, /\/tmp\/[^"<]*\.lopper|lopper-run-/);
});
