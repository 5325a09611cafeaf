// Canonical JSON and sha256 helpers: one stable byte string per value, so equal inputs give equal keys.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** JSON with object keys sorted at every level; `undefined` members dropped, as JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : sortKeys(v)));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value as object).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeys(v);
    }
    return out;
  }
  return value;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Cache key of a stage: sha256 of the canonical JSON of its key inputs (DESIGN.md "Runner semantics"). */
export function stageKey(keyInputs: Record<string, unknown>): string {
  return sha256Hex(canonicalJson(keyInputs));
}

export async function hashFileContents(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

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
