// Benchmark: cached-rerun wall time, prune-only invalidation, and watch-mode latency on the shipped example
// (examples/stories260k-taylor.yaml, copied to a temp dir with absolute paths, its own store).
// Usage: npx tsc -p . && node --import tsx bench/runner-cache.ts [recipe]   → bench/results/runner-cache[-<name>].json
// Default recipe: examples/stories260k-taylor.yaml up to prune; BENCH_FULL=1 runs every stage (and then also writes
// `lopper compare` of the ratio change to bench/results/runner-compare-<name>.txt).
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { watch, type WatchEvent } from '../src/run/watch.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const example = resolve(process.argv[2] ?? join(root, 'examples', 'stories260k-taylor.yaml'));
const exampleName = example.split('/').pop()!.replace(/\.ya?ml$/, '');

async function copyRecipe(dir: string, ratio: number): Promise<string> {
  let text = await readFile(example, 'utf8');
  text = text.replace(/path: ([^\s,}/][^\s,}]*)/g, (_m, p: string) => `path: ${resolve(dirname(example), p)}`);
  text = text.replace(/ratio: [0-9.]+/, `ratio: ${ratio}`);
  const path = join(dir, `${exampleName}.yaml`);
  await writeFile(path, text);
  return path;
}

function child(recipe: string, store: string, only: string | undefined) {
  const t = performance.now();
  const p = spawnSync(process.execPath, [join(root, 'bench', 'runner-cache-child.mjs'), recipe, store, only ?? ''], { encoding: 'utf8', timeout: 600_000 });
  const processMs = performance.now() - t;
  if (p.status !== 0) throw new Error(`child failed: ${p.stderr}`);
  const last = p.stdout.trim().split('\n').pop()!;
  const r = JSON.parse(last) as { error?: string; wallMs: number; importMs: number; runMs: number; executeMs: number; statuses: Record<string, string> };
  if (r.error) throw new Error(r.error);
  return { processMs, ...r };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lopper-bench-'));
  // BENCH_STORE reuses a store (keys hash file contents, not paths, so outputs of an earlier bench are found again).
  const store = process.env.BENCH_STORE ?? join(dir, '.lopper');
  const recipe = await copyRecipe(dir, 0.25);
  // Up to prune by default (the stages whose caching this bench is about; lora-finetune and evaluate take minutes on
  // a software WebGPU adapter); BENCH_FULL=1 runs the whole recipe.
  const only: string | undefined = process.env.BENCH_FULL ? undefined : 'pruned';
  const cold = child(recipe, store, only);

  const startups: number[] = [];
  for (let i = 0; i < 5; i++) { const t = performance.now(); spawnSync(process.execPath, ['-e', '0']); startups.push(performance.now() - t); }

  const cached = [];
  for (let i = 0; i < 7; i++) cached.push(child(recipe, store, only));
  for (const c of cached) if (Object.values(c.statuses).some((s) => s !== 'cached' && s !== 'skipped')) throw new Error(`not fully cached: ${JSON.stringify(c.statuses)}`);

  await writeFile(recipe, (await readFile(recipe, 'utf8')).replace(/ratio: [0-9.]+/, 'ratio: 0.375'));
  const ratioChange = child(recipe, store, only);
  let compareText: string | undefined;
  if (!only) {
    const c = spawnSync(process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'compare', 'latest~1', 'latest', '--store', store], { encoding: 'utf8' });
    compareText = c.stdout + c.stderr;
    await writeFile(join(root, 'bench', 'results', `runner-compare-${exampleName}.txt`), compareText);
  }

  // Watch latency: save a changed ratio, time until the prune stage starts.
  const events: WatchEvent[] = [];
  let wake: (() => void) | undefined;
  const h = watch(recipe, { store, only: only ? [only] : undefined, keys: false, out: { write: () => true } as never, onEvent: (e) => { events.push(e); wake?.(); } });
  const until = async (pred: (e: WatchEvent) => boolean, from: number) => {
    for (;;) {
      const hit = events.slice(from).find(pred);
      if (hit) return hit;
      await new Promise<void>((r) => { wake = r; });
    }
  };
  await until((e) => e.type === 'run-end', 0);
  const latencies: number[] = [];
  const breakdown: Array<{ debouncedAt: number; plannedAt: number; runStartAt: number; pruneStartAt: number }> = [];
  const scoreReruns: number[] = [];
  for (const ratio of (only ? [0.3125, 0.125, 0.4375, 0.1875, 0.25] : [0.3125])) {
    const from = events.length;
    const text = (await readFile(recipe, 'utf8')).replace(/ratio: [0-9.]+/, `ratio: ${ratio}`);
    const t = performance.now();
    await writeFile(recipe, text);
    const start = await until((e) => e.type === 'stage-start' && e.id === 'pruned', from);
    latencies.push(start.at - t);
    const at = (type: string) => Math.round((events.slice(from).find((e) => e.type === type)?.at ?? NaN) - t);
    breakdown.push({ debouncedAt: at('change'), plannedAt: at('plan'), runStartAt: at('run-start'), pruneStartAt: Math.round(start.at - t) });
    await until((e) => e.type === 'run-end', from);
    scoreReruns.push(events.slice(from).filter((e) => e.type === 'stage-start' && e.id === 'scores').length);
  }
  await h.close();

  const results = {
    date: new Date().toISOString(),
    machine: `${process.platform} ${process.arch}, node ${process.version}`,
    recipe: `${example.replace(`${root}/`, '')}${only ? ` (--only ${only})` : ' (every stage)'}`,
    nodeStartupMs: Math.round(median(startups)),
    coldRun: { wallMs: Math.round(cold.wallMs), statuses: cold.statuses },
    cachedRerun: {
      note: 'wallMs: from child start-up to run() resolved (excludes Node start-up); executeMs: the executor alone (decide, cache checks) — planning is the rest',
      runs: cached.length,
      wallMsMedian: Math.round(median(cached.map((c) => c.wallMs))),
      wallMsMax: Math.round(Math.max(...cached.map((c) => c.wallMs))),
      importMsMedian: Math.round(median(cached.map((c) => c.importMs))),
      executeMsMedian: Math.round(median(cached.map((c) => c.executeMs))),
      processMsMedian: Math.round(median(cached.map((c) => c.processMs))),
    },
    ratioChange: { statuses: ratioChange.statuses, wallMs: Math.round(ratioChange.wallMs), ...(compareText ? { compare: compareText.split('\n') } : {}) },
    watch: { pruneStartLatencyMs: latencies.map((x) => Math.round(x)), maxMs: Math.round(Math.max(...latencies)), breakdownMs: breakdown, scoreReruns: scoreReruns.reduce((a, b) => a + b, 0) },
  };
  await rm(dir, { recursive: true, force: true });
  const suffix = exampleName === 'stories260k-taylor' && only ? '' : `-${exampleName}${only ? '' : '-full'}`;
  await writeFile(join(root, 'bench', 'results', `runner-cache${suffix}.json`), JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(JSON.stringify(results, null, 2) + '\n');
}

await main();
