// Memoized content hashes. A file's content hash (plan/content-hash.ts) is remembered by (path, size, mtime, inode) in the store, so a 13 GB
// checkpoint is read once, not on every run. Directories hash as the sorted list of their files' hashes.
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { hashFileContents, listFiles, sha256Hex } from './digest.js';

interface MemoEntry { size: number; mtimeMs: number; ino: number; sha256: string }

const MEMO_VERSION = 2;

/** A file modified this recently may change again within the same mtime tick ("racy git"): hash it, don't memoize. */
const RACY_WINDOW_MS = 1000;

export interface FileHasher {
  /** sha256 of a file's bytes, or of a directory's (path, hash) list. */
  hashFile(path: string): Promise<string>;
  /** Writes the memo back to the store if it changed. */
  flush(): Promise<void>;
  /** How many files were actually read since creation (for tests and benchmarks). */
  readonly filesRead: number;
}

export function memoPath(storeDir: string): string {
  return join(storeDir, 'file-hashes.json');
}

export function createFileHasher(storeDir: string): FileHasher {
  const path = memoPath(storeDir);
  let memo: Map<string, MemoEntry> | undefined;
  let loading: Promise<Map<string, MemoEntry>> | undefined;
  let dirty = false;
  let filesRead = 0;
  const inflight = new Map<string, Promise<string>>();

  async function load(): Promise<Map<string, MemoEntry>> {
    if (memo) return memo;
    loading ??= (async () => {
      try {
        const raw = JSON.parse(await readFile(path, 'utf8')) as { version?: number; files?: Record<string, MemoEntry> };
        // Version 1 memos hold plain sha256s of large files, which are now hashed in chunks: they are rehashed.
        memo = new Map(raw.version === MEMO_VERSION ? Object.entries(raw.files ?? {}) : []);
      } catch {
        memo = new Map();
      }
      return memo;
    })();
    return loading;
  }

  async function hashOne(file: string): Promise<string> {
    const m = await load();
    const st = await stat(file);
    if (st.isDirectory()) {
      const files = await listFiles(file);
      const lines: string[] = [];
      for (const f of files) lines.push(`${await hashOne(join(file, f))}  ${f}`);
      return sha256Hex(lines.join('\n'));
    }
    const hit = m.get(file);
    if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs && hit.ino === st.ino) return hit.sha256;
    const sha256 = await hashFileContents(file);
    filesRead++;
    if (Date.now() - st.mtimeMs > RACY_WINDOW_MS) {
      m.set(file, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256 });
      dirty = true;
    } else if (hit) {
      m.delete(file);
      dirty = true;
    }
    return sha256;
  }

  return {
    get filesRead() { return filesRead; },
    hashFile(p: string): Promise<string> {
      const abs = resolve(p);
      let pending = inflight.get(abs);
      if (!pending) {
        pending = hashOne(abs).finally(() => inflight.delete(abs));
        inflight.set(abs, pending);
      }
      return pending;
    },
    async flush(): Promise<void> {
      if (!dirty || !memo) return;
      dirty = false;
      await mkdir(dirname(path), { recursive: true });
      const files = Object.fromEntries([...memo.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
      const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      await writeFile(tmp, JSON.stringify({ version: MEMO_VERSION, files }));
      await rename(tmp, path);
    },
  };
}
