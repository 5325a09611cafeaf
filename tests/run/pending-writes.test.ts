// A stage that returns with its model's files still being written (StageResult.pending): the device slot is freed,
// stages that read only resident models start beside the write, stages that read files wait for the commit, and a
// write that fails leaves neither its output nor the outputs computed beside it in the store.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LopperError } from '../../src/errors/lopper-error.js';
import { run } from '../../src/run/run.js';
import type { RunResult } from '../../src/run/types.js';
import type { StageModule } from '../../src/stages/types.js';
import { fakeBackend, fakePlan } from './fixtures/fake-pipeline.js';
import { workdir } from './fixtures/workdir.js';

const events: string[] = [];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const writer: StageModule & { resource: 'device' } = {
  kind: 'writer', version: '1', outputKind: 'model', resource: 'device',
  async run(ctx) {
    await writeFile(join(ctx.outDir, 'plan.json'), '{}');
    events.push('writer returns');
    const fail = (ctx.params as { fail?: boolean }).fail === true;
    const pending = (async () => {
      await sleep(150);
      if (fail) throw new Error('disk full (fake)');
      await writeFile(join(ctx.outDir, 'model.bin'), 'weights');
      events.push('writer wrote');
    })();
    return { pending, summary: {} };
  },
};
const residentReader: StageModule & { resource: 'device' } = {
  kind: 'resident-reader', version: '1', outputKind: 'metrics', resource: 'device', readsResidentModels: true,
  async run(ctx) {
    events.push('resident-reader starts');
    await sleep(20);
    await writeFile(join(ctx.outDir, 'metrics.json'), '{}');
    events.push('resident-reader ends');
  },
};
const fileReader: StageModule & { resource: 'device' } = {
  kind: 'file-reader', version: '1', outputKind: 'metrics', resource: 'device',
  async run(ctx) {
    events.push('file-reader starts');
    await writeFile(join(ctx.outDir, 'copy.bin'), await readFile(join(ctx.stageDir('pruned'), 'model.bin')));
  },
};
const stages = new Map<string, StageModule>([writer, residentReader, fileReader].map((m) => [m.kind, m]));
const options = { planFn: fakePlan, stages, initBackend: fakeBackend };

function recipe(fail: boolean): string {
  return `name: pending-writes
runtime: { backend: cpu }
stages:
  pruned: { kind: writer, fail: ${fail} }
  report: { kind: resident-reader, needs: [pruned] }
  copy:   { kind: file-reader, needs: [pruned] }
`;
}

test('a resident reader runs while the upstream model is written; a file reader waits for the commit', async () => {
  const w = await workdir();
  await writeFile(w.recipe, recipe(false));
  events.length = 0;
  const result = await run(w.recipe, options);
  assert.equal(result.status, 'ok');
  assert.deepEqual(Object.values(result.stages).map((s) => s.status), ['ran', 'ran', 'ran']);
  assert.ok(events.indexOf('resident-reader starts') < events.indexOf('writer wrote'), events.join(', '));
  assert.ok(events.indexOf('file-reader starts') > events.indexOf('writer wrote'), events.join(', '));
  assert.equal(await readFile(join(result.stages.copy!.output, 'copy.bin'), 'utf8'), 'weights');
  // The writer's wall time covers its write.
  assert.ok(result.stages.pruned!.wallMs! >= 140, `pruned wall ${result.stages.pruned!.wallMs} ms`);
  const again = await run(w.recipe, options);
  assert.deepEqual(Object.values(again.stages).map((s) => s.status), ['cached', 'cached', 'cached']);
});

test('a failed write stores neither the stage nor the output computed beside it (LP7009); nothing half-written remains', async () => {
  const w = await workdir();
  await writeFile(w.recipe, recipe(true));
  events.length = 0;
  let result: RunResult | undefined;
  await assert.rejects(run(w.recipe, options), (e: unknown) => {
    assert.ok(e instanceof LopperError && e.code === 'LP7002', String(e));
    result = (e as unknown as { result: RunResult }).result;
    return true;
  });
  assert.equal(result!.stages.pruned!.status, 'failed');
  assert.match(result!.stages.pruned!.error!, /disk full/);
  assert.ok(events.includes('resident-reader ends'), 'the reader ran beside the write');
  assert.equal(result!.stages.report!.status, 'failed');
  assert.match(result!.stages.report!.error!, /did not finish writing its output; report's output is not stored/);
  assert.equal(result!.stages.copy!.status, 'not run');
  for (const s of Object.values(result!.stages)) assert.equal(existsSync(s.output), false, `${s.id} has no stored output`);
  assert.deepEqual(await readdir(join(w.dir, '.lopper', 'tmp')), []);
});
