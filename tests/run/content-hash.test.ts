// The content hash behind cache keys and output digests: sha256 for files up to one chunk (what `sha256sum` prints),
// a chunked sha256 hashed on worker threads above; stable across thread counts; errors name the file.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { HASH_CHUNK_BYTES, contentHash } from '../../src/plan/content-hash.js';

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
    const path = join(dir, 'shrinking');
    await writeFile(path, pattern(HASH_CHUNK_BYTES + 10));
    const outcome = contentHash(path).then(
      (h) => assert.equal(typeof h, 'string'), // the workers may have read it whole before the truncate
      (e: Error) => assert.match(e.message, /shrinking: the file ended/),
    );
    await truncate(path, 5);
    await outcome;
  });
});
