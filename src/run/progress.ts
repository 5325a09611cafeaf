// Progress renderers: a listr2 task list (one task per stage, sub-progress with ETA) on a terminal, plain lines
// when stdout is not a TTY or CI is set. Both are RunReporters fed by the executor's events.
import type { Writable } from 'node:stream';
import type { ProgressState, RunReporter, RunResult, StageDecision, StageOutcome } from './types.js';

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function formatProgress(p: ProgressState): string {
  const pct = p.total > 0 ? ` (${Math.floor((100 * p.done) / p.total)}%)` : '';
  const eta = p.etaMs !== undefined && p.done < p.total ? ` ETA ${formatDuration(p.etaMs)}` : '';
  return `${p.phase} ${p.done}/${p.total}${pct}${eta}`;
}

function endLine(o: StageOutcome): string {
  switch (o.status) {
    case 'ran': return `✔ ${o.id}  ran in ${formatDuration(o.wallMs ?? 0)}`;
    case 'cached': return `✔ ${o.id}  cached${o.reasons.length ? ` (${o.reasons.join('; ')})` : ''}`;
    case 'failed': return `✖ ${o.id}  failed: ${o.error ?? ''}`;
    case 'cancelled': return `■ ${o.id}  cancelled`;
    default: return `· ${o.id}  ${o.status}`;
  }
}

export class PlainReporter implements RunReporter {
  private readonly lastProgress = new Map<string, number>();
  constructor(private readonly out: Writable, private readonly throttleMs = 1000) {}

  private write(line: string): void {
    this.out.write(`${line}\n`);
  }

  onDecisions(decisions: StageDecision[]): void {
    const run = decisions.filter((d) => d.action === 'run').length;
    const cached = decisions.filter((d) => d.action === 'cached').length;
    this.write(`lopper: ${decisions.length} stages — ${run} to run, ${cached} cached`);
  }
  onStageStart(id: string, d: StageDecision): void {
    this.write(`▶ ${id}  running — ${d.reasons.join('; ')}`);
  }
  onStageWaiting(id: string, why: string): void {
    this.write(`… ${id}  ${why}`);
  }
  onStageProgress(id: string, p: ProgressState): void {
    const now = performance.now();
    const last = this.lastProgress.get(id) ?? -Infinity;
    if (p.done !== p.total && p.done !== 0 && now - last < this.throttleMs) return;
    this.lastProgress.set(id, now);
    this.write(`  ${id}  ${formatProgress(p)}`);
  }
  onStageNote(id: string, message: string): void {
    this.write(`  ${id}  ${message}`);
  }
  onStageLog(id: string, line: string): void {
    this.write(`  ${id}: ${line}`);
  }
  onStageEnd(o: StageOutcome): void {
    this.write(endLine(o));
  }
  onRunEnd(r: RunResult): void {
    if (r.status === 'dry-run') return;
    const ran = Object.values(r.stages).filter((s) => s.status === 'ran').length;
    const cached = Object.values(r.stages).filter((s) => s.status === 'cached').length;
    this.write(`lopper: ${r.status} — ${ran} ran, ${cached} cached in ${formatDuration(r.wallMs)}`);
  }
}

interface Deferred { promise: Promise<void>; resolve(): void; reject(e: unknown): void }
function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

interface TaskHandle { title: string; output: string; skip(message?: string): void }

/** listr2 task list; listr2 is imported only when a run actually renders to a terminal. */
export class ListrReporter implements RunReporter {
  private readonly tasks = new Map<string, { done: Deferred; handle?: TaskHandle; pending: Array<(t: TaskHandle) => void> }>();
  private listrDone: Promise<unknown> = Promise.resolve();
  /** 'default' on a terminal; tests use 'silent'. */
  constructor(private readonly renderer: 'default' | 'simple' | 'silent' = 'default') {}

  onDecisions(decisions: StageDecision[]): void {
    for (const d of decisions) if (d.action !== 'skip') this.tasks.set(d.id, { done: deferred(), pending: [] });
    this.listrDone = (async () => {
      const { Listr } = await import('listr2');
      const list = new Listr(
        decisions.filter((d) => d.action !== 'skip').map((d) => ({
          title: `${d.id}  ${d.action === 'cached' ? 'cached' : 'waiting'}`,
          task: async (_ctx: unknown, task: TaskHandle) => {
            const t = this.tasks.get(d.id)!;
            t.handle = task;
            for (const f of t.pending.splice(0)) f(task);
            await t.done.promise;
          },
          rendererOptions: { persistentOutput: false },
        })),
        { renderer: this.renderer, concurrent: true, exitOnError: false, registerSignalListeners: false, collectErrors: false, rendererOptions: { collapseSubtasks: false } },
      );
      await list.run().catch(() => undefined);
    })();
  }

  private with(id: string, f: (t: TaskHandle) => void): void {
    const t = this.tasks.get(id);
    if (!t) return;
    if (t.handle) f(t.handle);
    else t.pending.push(f);
  }

  onStageStart(id: string, d: StageDecision): void {
    this.with(id, (t) => { t.title = `${id}  running — ${d.reasons.join('; ')}`; });
  }
  onStageWaiting(id: string, why: string): void {
    this.with(id, (t) => { t.output = why; });
  }
  onStageProgress(id: string, p: ProgressState): void {
    this.with(id, (t) => { t.output = formatProgress(p); });
  }
  onStageNote(id: string, message: string): void {
    this.with(id, (t) => { t.output = message; });
  }
  onStageEnd(o: StageOutcome): void {
    const t = this.tasks.get(o.id);
    if (!t) return;
    this.with(o.id, (h) => { h.title = endLine(o).slice(2); });
    if (o.status === 'ran' || o.status === 'cached') t.done.resolve();
    else if (o.status === 'failed') t.done.reject(new Error(o.error));
    else this.with(o.id, (h) => { h.skip(`${o.id}  ${o.status}`); t.done.resolve(); });
  }
  onRunEnd(r: RunResult): void {
    for (const [id, t] of this.tasks) {
      const o = r.stages[id];
      if (!o || (o.status !== 'ran' && o.status !== 'cached' && o.status !== 'failed')) this.with(id, (h) => { h.skip(`${id}  ${o?.status ?? 'not run'}`); t.done.resolve(); });
    }
  }
  /** Resolves when the task list has finished rendering. */
  finished(): Promise<unknown> {
    return this.listrDone;
  }
}

export function useFancyRenderer(stream: { isTTY?: boolean }): boolean {
  return Boolean(stream.isTTY) && !process.env.CI;
}
