// Provenance: a run record per run (in <store>/runs/) and a deterministic lockfile next to the recipe.
import type { GpuUsage } from '../backend/meter.js';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { LopperError } from '../errors/lopper-error.js';
import type { Plan } from '../plan/types.js';
import { canonicalJson } from './digest.js';
import type { Store } from './store.js';
import type { RunResult, StageStatus } from './types.js';

const exec = promisify(execFile);

export function lopperVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export interface GitInfo { commit: string | null; dirty: boolean | null; root: string | null }

/** Commit and dirty flag of the repository holding the recipe (read-only git commands). */
export async function gitInfo(dir: string): Promise<GitInfo> {
  try {
    const [head, root, status] = await Promise.all([
      exec('git', ['-C', dir, 'rev-parse', 'HEAD'], { timeout: 5000 }),
      exec('git', ['-C', dir, 'rev-parse', '--show-toplevel'], { timeout: 5000 }),
      exec('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'], { timeout: 5000 }),
    ]);
    return { commit: head.stdout.trim(), root: root.stdout.trim(), dirty: status.stdout.trim().length > 0 };
  } catch {
    return { commit: null, dirty: null, root: null };
  }
}

export interface RunRecord {
  version: 1;
  id: string;
  status: RunResult['status'];
  command?: string;
  startedAt: string;
  finishedAt: string;
  wallMs: number;
  lopper: { version: string };
  node: { version: string; platform: string; arch: string };
  backend: { requested: string; backend: string | null; adapter: string | null; features?: unknown; source: 'this run' | 'cached outputs' | 'none' };
  seed: number;
  git: GitInfo;
  recipe: {
    path: string;
    name: string;
    text: string | null;
    set: string[];
    /** The recipe as resolved: every stage's params after vars, matrix and defaults. */
    resolved: { seed: number; runtime: Plan['runtime']; stages: Record<string, { kind: string; params: Record<string, unknown>; dependsOn: string[] }> };
  };
  stages: Record<string, {
    kind: string; status: StageStatus; key: string; output: string; reasons: string[];
    startedAt?: string; wallMs?: number; peakRssBytes?: number; gpu?: GpuUsage; summary?: Record<string, unknown>; error?: string;
  }>;
  peakRssBytes: number;
  /** metrics.json of every evaluate stage, by stage id. */
  metrics: Record<string, unknown>;
}

export async function buildRunRecord(result: RunResult, store: Store, extra: { startedAt: Date; git: GitInfo; set?: string[]; command?: string }): Promise<RunRecord> {
  const { plan } = result;
  let backend: RunRecord['backend'] = { requested: plan.runtime.backend, backend: null, adapter: null, source: 'none' };
  if (result.backend) {
    backend = { requested: plan.runtime.backend, backend: result.backend.backend, adapter: result.backend.adapter ?? null, features: result.backend.features, source: 'this run' };
  } else {
    for (const s of plan.stages) {
      const meta = result.stages[s.id]?.status === 'cached' ? await store.readMeta(s.key) : undefined;
      if (meta?.backend) {
        backend = { requested: plan.runtime.backend, backend: meta.backend.backend, adapter: meta.backend.adapter ?? null, source: 'cached outputs' };
        break;
      }
    }
  }
  const stages: RunRecord['stages'] = {};
  const metrics: Record<string, unknown> = {};
  for (const s of plan.stages) {
    const o = result.stages[s.id];
    if (!o) continue;
    let { wallMs, peakRssBytes, summary, startedAt } = o;
    const { gpu } = o;
    if (o.status === 'cached') {
      const meta = await store.readMeta(s.key);
      summary ??= meta?.summary;
    }
    stages[s.id] = { kind: s.kind, status: o.status, key: s.key, output: o.output, reasons: o.reasons, startedAt, wallMs, peakRssBytes, gpu, summary, error: o.error };
    if (s.outputKind === 'metrics' && (o.status === 'ran' || o.status === 'cached')) {
      try {
        metrics[s.id] = JSON.parse(await readFile(join(o.output, 'metrics.json'), 'utf8'));
      } catch { /* stage wrote no metrics.json */ }
    }
  }
  let text: string | null = null;
  try { text = await readFile(plan.recipePath, 'utf8'); } catch { /* hand-made plan */ }
  return {
    version: 1,
    id: result.runId,
    status: result.status,
    command: extra.command,
    startedAt: extra.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    wallMs: Math.round(result.wallMs),
    lopper: { version: lopperVersion() },
    node: { version: process.version, platform: process.platform, arch: process.arch },
    backend,
    seed: plan.seed,
    git: extra.git,
    recipe: {
      path: plan.recipePath,
      name: plan.name,
      text,
      set: extra.set ?? [],
      resolved: {
        seed: plan.seed,
        runtime: plan.runtime,
        stages: Object.fromEntries(plan.stages.map((s) => [s.id, { kind: s.kind, params: s.params, dependsOn: s.dependsOn }])),
      },
    },
    stages,
    peakRssBytes: Math.max(process.memoryUsage.rss(), ...Object.values(stages).map((s) => s.peakRssBytes ?? 0)),
    metrics,
  };
}

export async function writeRunRecord(store: Store, record: RunRecord): Promise<string> {
  await mkdir(store.runsDir(), { recursive: true });
  const path = join(store.runsDir(), `${record.id}.json`);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(record, null, 2) + '\n');
  await rename(tmp, path);
  return path;
}

/**
 * Run records, oldest first. A store can serve several recipes (it sits next to them), so `recipePath` keeps only
 * the runs of that recipe.
 */
export async function listRuns(store: Store, recipePath?: string): Promise<RunRecord[]> {
  const names = (await readdir(store.runsDir()).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort();
  const out: RunRecord[] = [];
  for (const n of names) {
    try { out.push(JSON.parse(await readFile(join(store.runsDir(), n), 'utf8')) as RunRecord); } catch { /* skip unreadable */ }
  }
  const mine = recipePath === undefined ? out : out.filter((r) => r.recipe?.path === resolve(recipePath));
  return mine.sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : a.id < b.id ? -1 : 1));
}

/** A run by id prefix, `latest`, `latest~N` (of `recipePath`'s runs when given), or a path to a record file. */
export async function findRun(store: Store, ref: string, recipePath?: string): Promise<RunRecord> {
  if (ref.endsWith('.json') && !ref.includes('~')) {
    try { return JSON.parse(await readFile(ref, 'utf8')) as RunRecord; } catch { /* fall through to ids */ }
  }
  const runs = (await listRuns(store, recipePath)).filter((r) => r.status !== 'dry-run');
  const m = /^(?:latest|HEAD)(?:~(\d+))?$/.exec(ref);
  if (m) {
    const r = runs[runs.length - 1 - Number(m[1] ?? 0)];
    if (r) return r;
  } else {
    const hits = runs.filter((r) => r.id.startsWith(ref));
    if (hits.length === 1) return hits[0]!;
    if (hits.length > 1) throw new LopperError('LP7004', `run id "${ref}" is ambiguous (${hits.length} runs match)`, { hint: 'give more characters of the id' });
  }
  throw new LopperError('LP7004', `no run "${ref}" in ${store.runsDir()}`, { hint: 'lopper show lists the runs; latest and latest~1 name the last two' });
}

export function lockfilePath(recipePath: string): string {
  const ext = extname(recipePath);
  const stem = ext === '.yaml' || ext === '.yml' ? basename(recipePath, ext) : basename(recipePath);
  return join(dirname(recipePath), `${stem}.lock`);
}

/**
 * The lockfile: every stage's resolved params, key, upstream keys, input file hashes and output digest — sorted and
 * free of timestamps and absolute paths, so it only changes when results do. Written only when its content changes.
 * File hashes come from the memoized hasher (a stat per file when nothing changed).
 */
export async function writeLockfile(plan: Plan, store: Store, hashFile: (path: string) => Promise<string>): Promise<string> {
  const path = lockfilePath(plan.recipePath);
  const byId = new Map(plan.stages.map((s) => [s.id, s]));
  const stages: Record<string, unknown> = {};
  for (const s of [...plan.stages].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const meta = store.has(s.key) ? await store.readMeta(s.key) : undefined;
    const files: Record<string, string | null> = {};
    for (const f of [...s.files].sort()) files[relative(plan.recipeDir, f).split(sep).join('/') || f] = await hashFile(f).catch(() => null);
    stages[s.id] = JSON.parse(canonicalJson({
      kind: s.kind,
      version: s.keyInputs.version,
      key: s.key,
      params: s.params,
      deps: Object.fromEntries([...s.dependsOn].sort().map((d) => [d, byId.get(d)?.key ?? null])),
      files,
      out: meta ? { digest: meta.outputDigest } : null,
    }));
  }
  const doc = { schema: 1, name: plan.name, seed: plan.seed, runtime: plan.runtime, stages };
  const text = `# Generated by lopper — do not edit; delete it and rerun to regenerate.\n${stringify(doc, { sortMapEntries: true, lineWidth: 0 })}`;
  const old = await readFile(path, 'utf8').catch(() => null);
  if (old !== text) {
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, path);
  }
  return path;
}
