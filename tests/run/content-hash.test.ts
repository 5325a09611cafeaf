// The content hash behind cache keys and output digests: sha256 for files up to one chunk (what `sha256sum` prints),
// a chunked sha256 hashed on worker threads above; stable across thread counts; errors name the file.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { HASH_CHUNK_BYTES, chunkDigests, contentHash } from '../../src/plan/content-hash.js';
import { createFileHasher, memoPath } from '../../src/run/file-hash.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4093) b[i] = (i * 31) & 0xff;
  return b;
}

describe('content hash', () => {
  let dir = '';
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'lopper-hash-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('is the plain sha256 of a file of up to one chunk', async () => {
    for (const n of [0, 1, 1 << 20, HASH_CHUNK_BYTES]) {
      const path = join(dir, `small-${n}`);
      const bytes = pattern(n);
      await writeFile(path, bytes);
      assert.equal(await contentHash(path), sha256(bytes), `${n} bytes`);
    }
  });

  it('is the sha256 of the chunks’ sha256 digests above one chunk, the same with one thread or many', async () => {
    const bytes = pattern(2 * HASH_CHUNK_BYTES + 12345);
    const path = join(dir, 'big');
    await writeFile(path, bytes);
    const digests: string[] = [];
    for (let at = 0; at < bytes.length; at += HASH_CHUNK_BYTES) digests.push(sha256(bytes.subarray(at, Math.min(bytes.length, at + HASH_CHUNK_BYTES))));
    const expected = createHash('sha256').update(`lopper chunked sha256 v1, ${HASH_CHUNK_BYTES} bytes per chunk\n${digests.join('\n')}`).digest('hex');
    assert.equal(await contentHash(path), expected);
    // A fresh process with one hashing thread agrees (the pool size is read once per process).
    const child = spawnSync(process.execPath, ['--import', 'tsx', '-e',
      `import('${new URL('../../src/plan/content-hash.ts', import.meta.url).href}').then(async (m) => console.log(await m.contentHash(${JSON.stringify(path)})))`],
      { env: { ...process.env, LOPPER_HASH_THREADS: '1' }, encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), expected);
    // One changed byte in the last chunk changes the hash.
    bytes[bytes.length - 1] ^= 1;
    await writeFile(path, bytes);
    assert.notEqual(await contentHash(path), expected);
  });

  it('names the file when it cannot be read', async () => {
    await assert.rejects(contentHash(join(dir, 'missing')), /missing/);
    // A file that ends before the size it had when stat()ed (it changed meanwhile): the thread reading the missing
    // part reports it, naming the file.
    const path = join(dir, 'shrinking');
    await writeFile(path, pattern(HASH_CHUNK_BYTES + 10));
    await assert.rejects(chunkDigests(path, 2 * HASH_CHUNK_BYTES + 10), /shrinking: the file ended at byte \d+ while it was being hashed/);
  });

  it('a version 1 memo (plain sha256 of big files) is not trusted: the file is hashed again', async () => {
    const store = join(dir, 'store');
    await mkdir(store, { recursive: true });
    const path = join(dir, 'memoized');
    await writeFile(path, pattern(HASH_CHUNK_BYTES + 1));
    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    const st = await stat(path);
    await writeFile(memoPath(store), JSON.stringify({ version: 1, files: { [path]: { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256: 'stale' } } }));
    const hasher = createFileHasher(store);
    assert.equal(await hasher.hashFile(path), await contentHash(path));
    assert.equal(hasher.filesRead, 1);
  });
});
