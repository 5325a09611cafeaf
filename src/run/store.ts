// The content-addressed store: one directory per stage output, addressed by its cache key.
//   <store>/out/<key>/                 committed output (the stage's files + .lopper-meta.json)
//   <store>/tmp/<key>.<pid>.<rand>/    a stage being written; renamed to out/<key> when it finishes
//   <store>/locks/<key>.lock           held (pid inside) while one process computes that key
//   <store>/runs/<run id>.json         run records (provenance)
//   <store>/file-hashes.json           the file-hash memo (file-hash.ts)
//   <store>/plans/<id>.json            the plan cache (plan-cache.ts)
// The rename is the commit point: a directory under out/ is always complete, so nothing half-written is ever read.
import type { GpuUsage } from '../backend/meter.js';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import { hashDirectory, listFiles } from './digest.js';

export const META_FILE = '.lopper-meta.json';

/** Written next to every committed output: what `explain`, `cache ls`, `gc` and run records read. */
export interface StageMeta {
  version: 1;
  key: string;
  stageId: string;
  kind: string;
  keyInputs: Record<string, unknown>;
  runId: string;
  createdAt: string;
  wallMs: number;
  peakRssBytes: number;
  gpu?: GpuUsage;
  backend?: { backend: string; adapter?: string };
  summary?: Record<string, unknown>;
  /** Digest of the output files (excluding this meta file): equal outputs, equal digests. */
  outputDigest: string;
}

export interface StoreEntry { key: string; dir: string; meta: StageMeta; bytes: number; lastUsedMs: number }

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Store {
  readonly dir: string;
  private metaScan?: Promise<StoreEntry[]>;

  constructor(dir: string) {
    this.dir = dir;
  }

  outputDir(key: string): string {
    return join(this.dir, 'out', key);
  }

  runsDir(): string {
    return join(this.dir, 'runs');
  }

  /** True when a complete output for `key` exists (synchronous: the cached-run fast path). */
  has(key: string): boolean {
    return existsSync(join(this.outputDir(key), META_FILE));
  }

  async readMeta(key: string): Promise<StageMeta | undefined> {
    try {
      return JSON.parse(await readFile(join(this.outputDir(key), META_FILE), 'utf8')) as StageMeta;
    } catch {
      return undefined;
    }
  }

  /** Marks an output as used now (gc keeps the most recently used ones). */
  async touch(key: string): Promise<void> {
    const now = new Date();
    await utimes(join(this.outputDir(key), META_FILE), now, now).catch(() => undefined);
  }

  /** A fresh, empty temp directory inside the store (same filesystem as out/, so the commit rename is atomic). */
  async createTemp(key: string): Promise<string> {
    const dir = join(this.dir, 'tmp', `${key}.${process.pid}.${Math.random().toString(36).slice(2, 10)}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async discardTemp(tmp: string): Promise<void> {
    await rm(tmp, { recursive: true, force: true });
  }

  /**
   * Writes the meta file into `tmp` and renames it to out/<key>. With `replace` (a forced rerun) an existing output
   * is moved aside first; otherwise an output committed meanwhile by another process wins and `tmp` is dropped.
   */
  async commit(tmp: string, meta: Omit<StageMeta, 'outputDigest'>, replace: boolean): Promise<StageMeta> {
    const outputDigest = await hashDirectory(tmp, undefined, new Set([META_FILE]));
    const full: StageMeta = { ...meta, outputDigest };
    await writeFile(join(tmp, META_FILE), JSON.stringify(full, null, 2) + '\n');
    const target = this.outputDir(meta.key);
    await mkdir(join(this.dir, 'out'), { recursive: true });
    if (replace && existsSync(target)) {
      const trash = join(this.dir, 'tmp', `trash-${meta.key}.${process.pid}.${Math.random().toString(36).slice(2, 10)}`);
      await rename(target, trash);
      await rename(tmp, target);
      await rm(trash, { recursive: true, force: true });
    } else {
      try {
        await rename(tmp, target);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
        await rm(tmp, { recursive: true, force: true });
        return (await this.readMeta(meta.key)) ?? full;
      }
    }
    this.metaScan = undefined;
    return full;
  }

  /**
   * Takes the per-key lock, waiting while a live process holds it; a lock left by a dead process is broken.
   * Returns the release function.
   */
  async lock(key: string, opts: { signal?: AbortSignal; onWait?: (holderPid: number) => void } = {}): Promise<() => Promise<void>> {
    const dir = join(this.dir, 'locks');
    await mkdir(dir, { recursive: true });
    const path = join(dir, `${key}.lock`);
    let announced = false;
    for (;;) {
      opts.signal?.throwIfAborted();
      try {
        const fh = await open(path, 'wx');
        await fh.writeFile(String(process.pid));
        await fh.close();
        return async () => { await unlink(path).catch(() => undefined); };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = await readFile(path, 'utf8').catch(() => '');
      const pid = Number.parseInt(holder, 10);
      if (!pidAlive(pid)) {
        const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
        // An empty file may be a lock being written right now; only break it once it is clearly abandoned.
        if (holder !== '' || age > 2000) {
          await unlink(path).catch(() => undefined);
          continue;
        }
      } else if (!announced) {
        announced = true;
        opts.onWait?.(pid);
      }
      await sleep(50);
    }
  }

  /** Removes temp directories and locks left by processes that no longer run (killed runs). */
  async cleanStale(): Promise<number> {
    let removed = 0;
    for (const sub of ['tmp', 'locks']) {
      const names = await readdir(join(this.dir, sub)).catch(() => [] as string[]);
      for (const name of names) {
        let pid: number;
        if (sub === 'tmp') pid = Number.parseInt(name.split('.')[1] ?? '', 10);
        else pid = Number.parseInt(await readFile(join(this.dir, sub, name), 'utf8').catch(() => ''), 10);
        if (pidAlive(pid)) continue;
        if (sub === 'locks' && Number.isNaN(pid)) {
          const age = await stat(join(this.dir, sub, name)).then((s) => Date.now() - s.mtimeMs, () => 0);
          if (age < 2000) continue;
        }
        await rm(join(this.dir, sub, name), { recursive: true, force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Every committed output with its meta, newest first. */
  async entries(withSizes = false): Promise<StoreEntry[]> {
    if (!withSizes && this.metaScan) return this.metaScan;
    const scan = (async () => {
      const keys = await readdir(join(this.dir, 'out')).catch(() => [] as string[]);
      const out: StoreEntry[] = [];
      for (const key of keys) {
        const dir = this.outputDir(key);
        const metaPath = join(dir, META_FILE);
        let meta: StageMeta;
        let lastUsedMs: number;
        try {
          meta = JSON.parse(await readFile(metaPath, 'utf8')) as StageMeta;
          lastUsedMs = (await stat(metaPath)).mtimeMs;
        } catch {
          continue;
        }
        let bytes = 0;
        if (withSizes) for (const f of await listFiles(dir)) bytes += (await stat(join(dir, f))).size;
        out.push({ key, dir, meta, bytes, lastUsedMs });
      }
      return out.sort((a, b) => (a.meta.createdAt < b.meta.createdAt ? 1 : a.meta.createdAt > b.meta.createdAt ? -1 : 0));
    })();
    if (!withSizes) this.metaScan = scan;
    return scan;
  }

  /** The most recently created output of a stage id (what `explain` diffs against). */
  async newestFor(stageId: string): Promise<StageMeta | undefined> {
    return (await this.entries()).find((e) => e.meta.stageId === stageId)?.meta;
  }

  /**
   * Removes outputs beyond the `keepLast` most recently used per stage id (keys in `protect` are always kept), and
   * stale temp directories. Returns the removed entries.
   */
  async gc(opts: { keepLast: number; protect?: ReadonlySet<string> }): Promise<StoreEntry[]> {
    await this.cleanStale();
    const all = await this.entries(true);
    const byStage = new Map<string, StoreEntry[]>();
    for (const e of all) byStage.set(e.meta.stageId, [...(byStage.get(e.meta.stageId) ?? []), e]);
    const removed: StoreEntry[] = [];
    for (const list of byStage.values()) {
      list.sort((a, b) => b.lastUsedMs - a.lastUsedMs);
      for (const e of list.slice(Math.max(0, opts.keepLast))) {
        if (opts.protect?.has(e.key)) continue;
        const release = await this.lock(e.key);
        try {
          const trash = join(this.dir, 'tmp', `trash-${e.key}.${process.pid}.gc`);
          await mkdir(join(this.dir, 'tmp'), { recursive: true });
          await rename(e.dir, trash);
          await rm(trash, { recursive: true, force: true });
          removed.push(e);
        } finally {
          await release();
        }
      }
    }
    this.metaScan = undefined;
    return removed;
  }
}

export function storeError(message: string, cause?: unknown): LopperError {
  return new LopperError('LP7008', message, { cause });
}
