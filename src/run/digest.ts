// sha256 helpers for files and directory trees (canonical JSON and stage keys are the planner's: src/plan/keys.ts).
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { contentHash } from '../plan/content-hash.js';

export { canonicalJson } from '../plan/keys.js';

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A file's content hash: sha256 up to 64 MiB, a parallel chunked sha256 above (plan/content-hash.ts). */
export const hashFileContents = contentHash;

/** Files under `dir` (relative paths, '/'-separated, sorted), skipping names in `skip` at the top level. */
export async function listFiles(dir: string, skip: ReadonlySet<string> = new Set()): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    const entries = await readdir(join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      if (rel === '' && skip.has(e.name)) continue;
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out.push(r);
    }
  }
  await walk('');
  return out.sort();
}

/** Digest of a directory tree: sha256 over the sorted (relative path, file sha256) list. */
export async function hashDirectory(
  dir: string,
  hashFile: (path: string) => Promise<string> = hashFileContents,
  skip: ReadonlySet<string> = new Set(),
): Promise<string> {
  const files = await listFiles(dir, skip);
  const lines: string[] = [];
  for (const f of files) lines.push(`${await hashFile(join(dir, f))}  ${f}`);
  return sha256Hex(lines.join('\n'));
}
