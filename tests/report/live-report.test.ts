// Watch mode keeps <store>/report.html current: after each stage that ends (the stages still to run listed as
// missing), and again when the run ends; the page reloads itself.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { watch } from '../../src/run/watch.js';
import type { StageModule } from '../../src/stages/types.js';
import { fakeBackend, fakePlan } from '../run/fixtures/fake-pipeline.js';
import { workdir } from '../run/fixtures/workdir.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let openGate: () => void = () => undefined;
const trainLog = [{ step: 1, loss: 3, lr: 1e-3, tokens_per_second: 50 }, { step: 1, val_loss: 3.1 }];

const trainer: StageModule = {
  kind: 'train', version: '1', outputKind: 'model',
  async run(ctx) { await writeFile(join(ctx.outDir, 'train.jsonl'), trainLog.map((r) => JSON.stringify(r)).join('\n') + '\n'); },
};
const evaluator: StageModule = {
  kind: 'evaluate', version: '1', outputKind: 'metrics',
  async run(ctx) {
    await new Promise<void>((r) => { openGate = r; });
    await writeFile(join(ctx.outDir, 'metrics.json'), JSON.stringify({ models: { base: { params: 10, perplexity: { text: 7.25 }, zero_shot: {}, tokens_per_second: 1 } } }));
  },
};

/** The page once `pred` holds (the writes are asynchronous). */
async function pageWhen(path: string, pred: (html: string) => boolean): Promise<string> {
  for (let i = 0; i < 200; i++) {
    if (existsSync(path)) {
      const html = await readFile(path, 'utf8');
      if (pred(html)) return html;
    }
    await sleep(50);
  }
  throw new Error(`${path} never matched`);
}

test('watch rewrites <store>/report.html after each stage and at the end of the run; the page reloads itself', { timeout: 30_000 }, async () => {
  const w = await workdir();
  await writeFile(w.recipe, 'name: live\nruntime: { backend: cpu }\nstages:\n  base: { kind: train }\n  report: { kind: evaluate, needs: [base] }\n');
  const h = watch(w.recipe, { planFn: fakePlan, stages: new Map([trainer, evaluator].map((m) => [m.kind, m])), initBackend: fakeBackend, keys: false, out: new PassThrough() });
  const page = join(w.dir, '.lopper', 'report.html');
  try {
    await h.ready;
    // Mid-run: base's loss curve is in, report is still to run.
    const mid = await pageWhen(page, (html) => html.includes('base (train): loss per step'));
    assert.match(mid, new RegExp(`data-points="${trainLog.length}"><figcaption>base \\(train\\): loss per step`));
    assert.match(mid, /report \(evaluate\) has not run yet: no metrics\.json/);
    assert.match(mid, /location\.reload\(\)/);
    openGate();
    const done = await pageWhen(page, (html) => html.includes('data-value="7.25"'));
    assert.doesNotMatch(done, /has not run yet/);
  } finally {
    openGate();
    await h.close();
  }
});
