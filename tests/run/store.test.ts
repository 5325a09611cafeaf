import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createFileHasher } from '../../src/run/file-hash.js';
import { hashFileContents } from '../../src/run/digest.js';
import { run } from '../../src/run/run.js';
import { META_FILE, Store } from '../../src/run/store.js';
import { fakeBackend, fakePlan, fakeStages, recipeText } from './fixtures/fake-pipeline.js';
import { workdir } from './fixtures/workdir.js';

const base = { planFn: fakePlan, stages: fakeStages, initBackend: fakeBackend };

test('file hashes are memoized by (path, size, mtime, inode) and recomputed when any of them changes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lopper-hash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'big.bin');
  await writeFile(f, Buffer.alloc(1 << 20, 7));
  const past = new Date(Date.now() - 60_000);
  await utimes(f, past, past);
  const h1 = createFileHasher(join(dir, 'store'));
  const a = await h1.hashFile(f);
  assert.equal(a, await hashFileContents(f));
  assert.equal(h1.filesRead, 1);
  await h1.flush();
  const h2 = createFileHasher(join(dir, 'store'));
  assert.equal(await h2.hashFile(f), a);
  assert.equal(h2.filesRead, 0, 'a second process reads the memo, not the file');
  // Same size, new content, new mtime: rehashed.
  await writeFile(f, Buffer.alloc(1 << 20, 8));
  const later = new Date(Date.now() - 30_000);
  await utimes(f, later, later);
  const b = await h2.hashFile(f);
  assert.notEqual(b, a);
  assert.equal(h2.filesRead, 1);
  // A file modified just now is hashed but not memoized (its mtime tick may still change).
  const g = join(dir, 'fresh.txt');
  await writeFile(g, 'fresh');
  await h2.hashFile(g);
  await h2.flush();
  const memo = JSON.parse(await readFile(join(dir, 'store', 'file-hashes.json'), 'utf8'));
  assert.ok(memo.files[f]);
  assert.equal(memo.files[g], undefined);
  // Directories hash as their files' (path, hash) list.
  await mkdir(join(dir, 'm'));
  await writeFile(join(dir, 'm', 'config.json'), '{}');
  const d1 = await h2.hashFile(join(dir, 'm'));
  await writeFile(join(dir, 'm', 'config.json'), '{"a":1}');
  assert.notEqual(await h2.hashFile(join(dir, 'm')), d1);
});

test('stale temp dirs and locks of dead processes are cleaned; live ones are kept', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lopper-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new Store(dir);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  await mkdir(join(dir, 'tmp', `abc.${dead}.xyz`, 'model'), { recursive: true });
  await writeFile(join(dir, 'tmp', `abc.${dead}.xyz`, 'model', 'half.safetensors'), 'partial');
  await mkdir(join(dir, 'tmp', `def.${process.pid}.xyz`), { recursive: true });
  await mkdir(join(dir, 'locks'), { recursive: true });
  await writeFile(join(dir, 'locks', 'k1.lock'), dead);
  assert.equal(await store.cleanStale(), 2);
  assert.deepEqual(await readdir(join(dir, 'tmp')), [`def.${process.pid}.xyz`]);
  assert.deepEqual(await readdir(join(dir, 'locks')), []);
  // A lock held by a dead process is broken; one held by this process is waited for.
  await writeFile(join(dir, 'locks', 'k2.lock'), dead);
  const release = await store.lock('k2');
  let second = false;
  const waiting = store.lock('k2').then((r) => { second = true; return r; });
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(second, false);
  await release();
  await (await waiting)();
  assert.equal(second, true);
});

test('cache entries list with their stage ids; gc keeps the most recently used per stage', async () => {
  const w = await workdir();
  await run(w.recipe, base);
  await writeFile(w.recipe, recipeText({ ratio: 0.5 }));
  await new Promise((r) => setTimeout(r, 20));
  await run(w.recipe, base);
  const store = new Store(join(w.dir, '.lopper'));
  const entries = await store.entries(true);
  assert.equal(entries.length, 7);
  assert.equal(entries.filter((e) => e.meta.stageId === 'pruned').length, 2);
  assert.ok(entries.every((e) => e.bytes > 0 && existsSync(join(e.dir, META_FILE))));
  // Back to 0.25: its outputs become the most recently used ones and survive gc --keep-last 1.
  await writeFile(w.recipe, recipeText({ ratio: 0.25 }));
  await new Promise((r) => setTimeout(r, 20));
  const back = await run(w.recipe, base);
  const removed = await store.gc({ keepLast: 1 });
  assert.deepEqual(removed.map((e) => e.meta.stageId).sort(), ['pruned', 'report']);
  for (const s of Object.values(back.stages)) assert.ok(store.has(s.key), `${s.id} kept`);
  const again = await run(w.recipe, base);
  assert.ok(Object.values(again.stages).every((s) => s.status === 'cached'));
});
