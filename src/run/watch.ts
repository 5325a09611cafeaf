// Watch mode: chokidar on the recipe and every file its stages read (never the store or outputs). On a change
// (debounced): revalidate and replan, cancel the stage in flight if its key changed, and start a run that reuses
// everything still valid. A broken edit prints the error and keeps the last good results. Keys: r rerun,
// f force the current stage, q quit.
import { resolve, sep } from 'node:path';
import type { Writable } from 'node:stream';
import type { Plan } from '../plan/types.js';
import { liveReport } from '../report/live.js';
import { formatError } from './error-format.js';
import type { Execution } from './executor.js';
import { createFileHasher } from './file-hash.js';
import { planRecipe, storeDirFor } from './planner.js';
import { PlainReporter } from './progress.js';
import { startRun, type RunCallOptions } from './run.js';
import { Store } from './store.js';
import type { RunReporter, RunResult, StageDecision, StageOutcome } from './types.js';

export type WatchEvent =
  | { type: 'change'; paths: string[]; at: number }
  | { type: 'plan'; plan: Plan; at: number }
  | { type: 'invalid'; error: unknown; at: number }
  | { type: 'cancelled'; stages: string[]; at: number }
  | { type: 'run-start'; runId: string; at: number }
  | { type: 'decisions'; runId: string; decisions: StageDecision[]; at: number }
  | { type: 'stage-start'; runId: string; id: string; key: string; at: number }
  | { type: 'stage-end'; runId: string; outcome: StageOutcome; at: number }
  | { type: 'run-end'; result: RunResult; at: number };

export interface WatchOptions extends RunCallOptions {
  /** Quiet period after the last file event before replanning (default 30 ms). */
  debounceMs?: number;
  onEvent?: (e: WatchEvent) => void;
  /** Read r/f/q from stdin (default: when stdin is a TTY). */
  keys?: boolean;
  out?: Writable;
}

export interface WatchHandle {
  /** Resolves after the first plan and the start of the first run. */
  ready: Promise<void>;
  /** Replans and runs (f: force the stage in flight, or the last one that ran). */
  rerun(force?: boolean): Promise<void>;
  close(): Promise<void>;
  /** Resolves when the watcher is closed (q, close()). */
  closed: Promise<void>;
  /** The most recent finished run's result (the last good results). */
  lastResult(): RunResult | undefined;
}

export function watch(recipePath: string, opts: WatchOptions = {}): WatchHandle {
  const path = resolve(recipePath);
  const out = opts.out ?? process.stdout;
  const emit = (e: WatchEvent) => opts.onEvent?.(e);
  const storeDir = storeDirFor(path, opts.store);
  const store = new Store(storeDir);
  const hasher = createFileHasher(storeDir);
  const debounceMs = opts.debounceMs ?? 30;
  // <store>/report.html, current after every stage (the page reloads itself).
  const report = liveReport(store, (e) => out.write(`lopper watch: could not write ${store.dir}/report.html: ${formatError(e)}\n`));

  let current: { execution: Execution; done: Promise<RunResult>; plan: Plan } | undefined;
  let last: RunResult | undefined;
  let lastRanStage: string | undefined;
  let closedFlag = false;
  let watcher: import('chokidar').FSWatcher | undefined;
  let watched = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let changed = new Set<string>();
  let replanning: Promise<void> = Promise.resolve();
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => { resolveClosed = r; });

  const insideStore = (p: string) => p === storeDir || p.startsWith(storeDir + sep);

  async function updateWatched(plan: Plan | undefined): Promise<void> {
    const want = new Set<string>([path]);
    for (const s of plan?.stages ?? []) for (const f of s.files) if (!insideStore(f)) want.add(resolve(f));
    if (!watcher) {
      const { watch: chokidarWatch } = await import('chokidar');
      watcher = chokidarWatch([...want], { ignoreInitial: true, ignored: (p: string) => insideStore(resolve(p)) });
      watcher.on('all', (_event: string, p: string) => onFsEvent(p));
      await new Promise<void>((r) => watcher!.once('ready', () => r()));
    } else {
      const add = [...want].filter((p) => !watched.has(p));
      const remove = [...watched].filter((p) => !want.has(p));
      if (add.length) watcher.add(add);
      if (remove.length) watcher.unwatch(remove);
    }
    watched = want;
  }

  function onFsEvent(p: string): void {
    if (closedFlag) return;
    changed.add(p);
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      const paths = [...changed];
      changed = new Set();
      emit({ type: 'change', paths, at: performance.now() });
      out.write(`\nlopper watch: ${paths.map((x) => x.replace(`${process.cwd()}${sep}`, '')).join(', ')} changed\n`);
      void schedule(false);
    }, debounceMs);
  }

  function reporterFor(runId: () => string): RunReporter {
    const plain = new PlainReporter(out);
    return {
      ...bindAll(plain),
      onDecisions(d, plan) {
        emit({ type: 'decisions', runId: runId(), decisions: d, at: performance.now() });
        plain.onDecisions(d);
        report.start(plan, runId());
      },
      onStageStart(id, d) {
        lastRanStage = id;
        emit({ type: 'stage-start', runId: runId(), id, key: d.key, at: performance.now() });
        plain.onStageStart(id, d);
      },
      onStageEnd(o) {
        emit({ type: 'stage-end', runId: runId(), outcome: o, at: performance.now() });
        plain.onStageEnd(o);
        report.stageEnded(o);
      },
    };
  }

  async function replanAndRun(force: boolean): Promise<void> {
    let plan: Plan;
    try {
      plan = await planRecipe(path, hasher, { set: opts.set, backend: opts.backend, planFn: opts.planFn, planCache: opts.planCache, storeDir });
    } catch (e) {
      emit({ type: 'invalid', error: e, at: performance.now() });
      out.write(`${formatError(e)}\nlopper watch: keeping the last good results; fix the recipe and save again\n`);
      return;
    }
    if (closedFlag) return;
    emit({ type: 'plan', plan, at: performance.now() });
    await updateWatched(plan).catch((e) => out.write(`${formatError(e)}\n`));
    const keys = new Set(plan.stages.map((s) => s.key));
    let forceIds: string[] | undefined;
    if (force) {
      const id = current ? [...current.execution.inFlight().keys()][0] ?? lastRanStage : lastRanStage;
      if (id && plan.stages.some((s) => s.id === id)) forceIds = [id];
    }
    if (current) {
      const cancelled = current.execution.cancelStages((id, key) => keys.has(key) && !forceIds?.includes(id));
      if (cancelled.length) {
        emit({ type: 'cancelled', stages: cancelled, at: performance.now() });
        out.write(`lopper watch: cancelled ${cancelled.join(', ')} (its inputs changed)\n`);
      }
      current.execution.stopScheduling();
    }
    let runId = '';
    const started = startRun(plan, { ...opts, force: forceIds ?? false, reporter: reporterFor(() => runId), command: `lopper watch ${recipePath}`, gitAfterRun: true, keepModels: true }, store);
    runId = started.execution.runId;
    emit({ type: 'run-start', runId, at: performance.now() });
    const entry = { ...started, plan };
    current = entry;
    void started.done.then((r) => {
      if (current === entry) current = undefined;
      if (r.status === 'ok') last = r;
      emit({ type: 'run-end', result: r, at: performance.now() });
      if (r.status === 'failed') out.write(`${formatError(r.failed?.error)}\n`);
      if (current === undefined && !closedFlag) out.write('lopper watch: waiting for changes (r rerun, f force current stage, q quit)\n');
    }, (e) => out.write(`${formatError(e)}\n`));
  }

  function schedule(force: boolean): Promise<void> {
    replanning = replanning.then(() => replanAndRun(force));
    return replanning;
  }

  async function close(): Promise<void> {
    if (closedFlag) return closed;
    closedFlag = true;
    if (timer) clearTimeout(timer);
    if (stdinHandler) {
      process.stdin.off('data', stdinHandler);
      if (process.stdin.isTTY) process.stdin.setRawMode(false);
      process.stdin.pause();
    }
    await replanning.catch(() => undefined);
    if (current) {
      current.execution.cancel();
      await current.done.catch(() => undefined);
    }
    await watcher?.close();
    await report.flushed();
    await hasher.flush().catch(() => undefined);
    resolveClosed();
    return closed;
  }

  let stdinHandler: ((b: Buffer) => void) | undefined;
  if (opts.keys ?? Boolean(process.stdin.isTTY)) {
    stdinHandler = (b: Buffer) => {
      const k = b.toString();
      if (k === 'q' || k === '\u0003') void close();
      else if (k === 'r') void schedule(false);
      else if (k === 'f') void schedule(true);
    };
    if (process.stdin.isTTY) process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on('data', stdinHandler);
  }

  const ready = (async () => {
    await updateWatched(undefined);
    await schedule(false);
  })();

  return {
    ready,
    rerun: (force = false) => schedule(force),
    close,
    closed,
    lastResult: () => last,
  };
}

function bindAll(r: PlainReporter): RunReporter {
  return {
    onStageWaiting: r.onStageWaiting.bind(r),
    onStageProgress: r.onStageProgress.bind(r),
    onStageNote: r.onStageNote.bind(r),
    onStageLog: r.onStageLog.bind(r),
    onRunEnd: r.onRunEnd.bind(r),
  };
}
