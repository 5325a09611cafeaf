// SIGKILL at 20 random moments during runs, then rerun: every run completes, no stage output is ever read
// half-written (the fake stages refuse incomplete upstream files), and results equal an uninterrupted run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { hashDirectory } from '../../src/run/digest.js';
import { META_FILE, type StageMeta } from '../../src/run/store.js';
import { workdir } from './fixtures/workdir.js';

const child = join(import.meta.dirname, 'fixtures', 'kill-child.ts');

function startChild(recipe: string): { exited: Promise<number | null>; kill(): void; startedAt: number } {
  const p = spawn(process.execPath, ['--import', 'tsx', child, recipe], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  const exited = new Promise<number | null>((res) => p.on('exit', (code) => {
    if (code !== 0 && code !== null) console.error(err);
    res(code);
  }));
  return { exited, kill: () => p.kill('SIGKILL'), startedAt: performance.now() };
}

/** Every committed output is complete: meta present, digest matches the files on disk. Returns stage → digest. */
async function checkStore(store: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const keys = await readdir(join(store, 'out')).catch(() => [] as string[]);
  for (const key of keys) {
    const dir = join(store, 'out', key);
    const meta = JSON.parse(await readFile(join(dir, META_FILE), 'utf8')) as StageMeta;
    assert.equal(meta.key, key);
    assert.equal(await hashDirectory(dir, undefined, new Set([META_FILE])), meta.outputDigest, `output ${meta.stageId} is complete`);
    const text = await readFile(join(dir, 'out.txt'), 'utf8');
    assert.ok(text.endsWith('END\n'));
    out.set(meta.stageId, meta.outputDigest);
  }
  return out;
}

test('SIGKILL at 20 random moments, then rerun: complete, never half-written, equal to an uninterrupted run', { timeout: 120_000 }, async () => {
  const ref = await workdir({ sleepMs: 120 });
  const t0 = performance.now();
  const r = startChild(ref.recipe);
  assert.equal(await r.exited, 0);
  const fullMs = performance.now() - t0;
  const expected = await checkStore(join(ref.dir, '.lopper'));
  assert.equal(expected.size, 5);

  const w = await workdir({ sleepMs: 120 });
  const store = join(w.dir, '.lopper');
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const killedAt: number[] = [];
  let attempts = 0;
  while (killedAt.length < 20 && attempts++ < 60) {
    const at = Math.round(fullMs * (0.25 + 0.7 * random()));
    const c = startChild(w.recipe);
    const timer = setTimeout(() => c.kill(), at);
    const code = await c.exited;
    clearTimeout(timer);
    if (code === null) killedAt.push(at);
    else assert.equal(code, 0);
    await checkStore(store);
    if (code === 0 || killedAt.length % 3 === 0) {
      const again = startChild(w.recipe);
      assert.equal(await again.exited, 0, 'the rerun after a kill completes');
      assert.deepEqual(await checkStore(store), expected);
      assert.deepEqual(await readdir(join(store, 'tmp')), [], 'temp dirs of killed runs are cleaned');
      await rm(join(store, 'out'), { recursive: true, force: true });
    }
  }
  assert.equal(killedAt.length, 20, `killed at ${killedAt.join(', ')} ms after ${attempts} starts`);
});

test('two lopper processes on one store: each stage is computed once, the other process reuses it', { timeout: 60_000 }, async () => {
  const w = await workdir({ sleepMs: 150 });
  const a = startChild(w.recipe);
  const b = startChild(w.recipe);
  assert.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0]);
  const runsDir = join(w.dir, '.lopper', 'runs');
  const records = await Promise.all((await readdir(runsDir)).map(async (n) => JSON.parse(await readFile(join(runsDir, n), 'utf8'))));
  assert.equal(records.length, 2);
  for (const id of ['groups', 'scores', 'importance', 'pruned', 'report']) {
    const statuses = records.map((r) => r.stages[id].status).sort();
    assert.deepEqual(statuses, ['cached', 'ran'], `${id} computed once, reused by the other process`);
  }
  await checkStore(join(w.dir, '.lopper'));
});
