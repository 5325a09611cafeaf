// Executes a Plan: decides per stage cached / run (with the reason), then runs the DAG in order — independent CPU
// stages in parallel, device stages through the one device slot — each stage into a temp dir that is renamed into
// the store when it finishes. A cancelled or failed stage leaves nothing behind but its removed temp dir.
import { createHash } from 'node:crypto';
import { LopperError, StageCancelled } from '../errors/lopper-error.js';
import type { Plan, PlannedStage } from '../plan/types.js';
import type { DatasetSpec, ModelRef, ProgressReporter, StageContext, StageModule, UpstreamOutput } from '../stages/types.js';
import { openMeter } from '../backend/meter.js';
import { ensureBackend, withDeviceChecks, type BackendInfo } from './backend-init.js';
import { deviceSlot, Slot, stageResource } from './device-slot.js';
import { missReasons } from './explain.js';
import { Store } from './store.js';
import { sharedResidency, type ModelResidency } from '../model/residency.js';
import type { ProgressState, RunOptions, RunReporter, RunResult, StageDecision, StageModuleSource, StageOutcome } from './types.js';

export function newRunId(): string {
  return `${new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${Math.random().toString(36).slice(2, 8)}`;
}

function requireStage(plan: Plan, id: string, flag: string): PlannedStage {
  const s = plan.stages.find((x) => x.id === id);
  if (!s) {
    throw new LopperError('LP7001', `${flag} names stage "${id}", which is not in the plan of ${plan.recipePath}`, {
      hint: `stages: ${plan.stages.map((x) => x.id).join(', ')}`,
    });
  }
  return s;
}

function upstreamClosure(plan: Plan, ids: string[]): Set<string> {
  const byId = new Map(plan.stages.map((s) => [s.id, s]));
  const out = new Set<string>();
  const visit = (id: string) => {
    if (out.has(id)) return;
    out.add(id);
    for (const d of byId.get(id)?.dependsOn ?? []) visit(d);
  };
  ids.forEach(visit);
  return out;
}

function downstreamClosure(plan: Plan, id: string): Set<string> {
  const out = new Set<string>([id]);
  for (const s of plan.stages) if (s.dependsOn.some((d) => out.has(d))) out.add(s.id);
  return out;
}

/**
 * Per stage: cached, run (with why) or skip. A pure function of the plan, the options and the store's contents —
 * `lopper plan`, `--dry-run` and `run` all go through it.
 */
export async function decide(plan: Plan, store: Store, opts: Pick<RunOptions, 'force' | 'only' | 'from'> & { modules?: Map<string, { resource?: unknown }> } = {}): Promise<StageDecision[]> {
  const selected = opts.only?.length
    ? upstreamClosure(plan, opts.only.map((id) => requireStage(plan, id, '--only').id))
    : new Set(plan.stages.map((s) => s.id));
  const forced = new Map<string, string>();
  if (opts.force === true) for (const id of selected) forced.set(id, 'forced (--force)');
  else if (Array.isArray(opts.force)) for (const id of opts.force) forced.set(requireStage(plan, id, '--force').id, 'forced (--force)');
  if (opts.from) {
    for (const id of downstreamClosure(plan, requireStage(plan, opts.from, '--from').id)) {
      if (!forced.has(id)) forced.set(id, id === opts.from ? 'rerun requested (--from)' : `downstream of --from ${opts.from}`);
    }
  }
  const out: StageDecision[] = [];
  for (const s of plan.stages) {
    const base = { id: s.id, kind: s.kind, key: s.key, forced: false, resource: stageResource(s.kind, opts.modules?.get(s.kind)) };
    if (!selected.has(s.id)) out.push({ ...base, action: 'skip', reasons: ['not needed by --only'] });
    else if (forced.has(s.id)) out.push({ ...base, action: 'run', forced: true, reasons: [forced.get(s.id)!] });
    else if (store.has(s.key)) out.push({ ...base, action: 'cached', reasons: [] });
    else out.push({ ...base, action: 'run', reasons: await missReasons(s, store) });
  }
  return out;
}

async function loadModule(source: StageModuleSource | undefined, kind: string): Promise<StageModule> {
  let module: StageModule | undefined;
  if (typeof source === 'function') module = await source(kind);
  else if (source) module = source.get(kind);
  else module = (await import('../stages/registry.js')).stageRegistry.get(kind);
  if (!module) throw new LopperError('LP7007', `no stage module is registered for kind "${kind}"`);
  return module;
}

function progressFor(id: string, reporter: RunReporter | undefined): ProgressReporter {
  let state: ProgressState | undefined;
  let started = 0;
  return {
    start(phase, total) {
      state = { phase, done: 0, total };
      started = performance.now();
      reporter?.onStageProgress?.(id, { ...state });
    },
    tick(n = 1) {
      if (!state) return;
      state.done = Math.min(state.total, state.done + n);
      const elapsed = performance.now() - started;
      state.etaMs = state.done > 0 ? (elapsed / state.done) * (state.total - state.done) : undefined;
      reporter?.onStageProgress?.(id, { ...state });
    },
    note(message) {
      reporter?.onStageNote?.(id, message);
    },
  };
}

/** Samples the process RSS while a stage runs (stages running at once share the process, so share the peak). */
function rssSampler(): { stop(): number } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 50);
  timer.unref();
  return { stop() { clearInterval(timer); return Math.max(peak, process.memoryUsage.rss()); } };
}

function isCancellation(e: unknown, signal: AbortSignal): boolean {
  return signal.aborted || e instanceof StageCancelled || (e instanceof Error && e.name === 'AbortError');
}

/** Residency key of the model a model-producing stage writes: its output is the content, so its key names it. */
export function outputModelKey(stageKey: string): string {
  return `stage:${stageKey}`;
}

/** Residency key of a `models:` entry: the hash of what the planner hashed for it (format and file hashes). */
function entryKey(plan: Plan, name: string): { key?: string } {
  for (const s of plan.stages) {
    const m = (s.keyInputs.models as Record<string, unknown> | undefined)?.[name];
    if (m !== undefined) return { key: `models:${createHash('sha256').update(JSON.stringify(m)).digest('hex')}` };
  }
  return {};
}

/** A run in progress: its result, plus the handles watch mode uses to cancel stages or stop scheduling. */
export class Execution {
  readonly result: Promise<RunResult>;
  private readonly stageControllers = new Map<string, { key: string; controller: AbortController }>();
  private stopped = false;
  private readonly runController = new AbortController();
  private wake: () => void = () => undefined;
  /** Per stage run by this execution: resolves true once its output is committed (false when it is not). */
  private readonly committed = new Map<string, Promise<boolean>>();

  readonly residency: ModelResidency;

  constructor(readonly plan: Plan, readonly store: Store, readonly opts: RunOptions, readonly runId = newRunId()) {
    this.residency = opts.residency ?? sharedResidency();
    if (opts.signal) {
      if (opts.signal.aborted) this.runController.abort(opts.signal.reason);
      else opts.signal.addEventListener('abort', () => this.runController.abort(opts.signal!.reason), { once: true });
    }
    this.result = this.execute();
  }

  /** Stages running now: id → key. */
  inFlight(): Map<string, string> {
    return new Map([...this.stageControllers].map(([id, v]) => [id, v.key]));
  }

  /** Cancels running stages whose key fails `keep`; they end as 'cancelled' and leave no output. */
  cancelStages(keep: (id: string, key: string) => boolean): string[] {
    const cancelled: string[] = [];
    for (const [id, { key, controller }] of this.stageControllers) {
      if (!keep(id, key)) {
        controller.abort(new StageCancelled(id));
        cancelled.push(id);
      }
    }
    return cancelled;
  }

  /** Starts no further stages; stages in flight finish (and are committed). */
  stopScheduling(): void {
    this.stopped = true;
    this.wake();
  }

  /** Aborts everything: the stages in flight are abandoned. */
  cancel(reason?: unknown): void {
    this.runController.abort(reason ?? new StageCancelled('run'));
  }

  private async execute(): Promise<RunResult> {
    const { plan, store, opts } = this;
    const t0 = performance.now();
    const reporter = opts.reporter;
    const signal = this.runController.signal;
    if (!opts.dryRun) await store.cleanStale();
    const decisions = await decide(plan, store, opts);
    reporter?.onDecisions?.(decisions, plan);
    const byId = new Map(plan.stages.map((s) => [s.id, s]));
    const decisionOf = new Map(decisions.map((d) => [d.id, d]));
    const outcomes: Record<string, StageOutcome> = {};
    const base = (d: StageDecision): StageOutcome => ({ id: d.id, kind: d.kind, key: d.key, output: store.outputDir(d.key), reasons: d.reasons, status: 'not run' });

    if (opts.dryRun) {
      for (const d of decisions) {
        outcomes[d.id] = { ...base(d), status: d.action === 'cached' ? 'cached' : d.action === 'run' ? 'will run' : 'skipped' };
      }
      const r: RunResult = { runId: this.runId, status: 'dry-run', plan, store: store.dir, decisions, stages: outcomes, wallMs: performance.now() - t0 };
      reporter?.onRunEnd?.(r);
      return r;
    }

    const touches: Promise<void>[] = [];
    for (const d of decisions) {
      if (d.action === 'cached') {
        outcomes[d.id] = { ...base(d), status: 'cached' };
        touches.push(store.touch(d.key));
        reporter?.onStageEnd?.(outcomes[d.id]!);
      } else if (d.action === 'skip') {
        outcomes[d.id] = { ...base(d), status: 'skipped' };
      }
    }
    await Promise.all(touches);

    const historyStart = this.residency.history.length;
    const pending = decisions.filter((d) => d.action === 'run').map((d) => d.id);
    const done = new Set(decisions.filter((d) => d.action !== 'run').map((d) => d.id));
    const running = new Map<string, Promise<void>>();
    const cpuSlot = new Slot(Math.max(1, opts.jobs ?? 2));
    let failure: { stageId: string; error: unknown } | undefined;
    let backend: BackendInfo | undefined;

    // Modules of the stages to run, known up front so that scheduling can ask what a stage reads; a module that does
    // not load fails its stage in runOne.
    const modules = new Map<string, StageModule>();
    for (const id of pending) {
      const kind = byId.get(id)!.kind;
      if (!modules.has(kind)) await loadModule(opts.stages, kind).then((m) => modules.set(kind, m), () => undefined);
    }
    // Stages whose run returned with writes in flight (StageResult.pending), and per such stage whether it committed.
    const writing = new Set<string>();
    const committed = this.committed;
    const settled = (d: string) => done.has(d) && ['ran', 'cached', 'skipped'].includes(outcomes[d]?.status ?? '');
    const ready = (id: string) => {
      const early = modules.get(byId.get(id)!.kind)?.readsResidentModels === true;
      return byId.get(id)!.dependsOn.every((d) => settled(d) || (early && writing.has(d)));
    };
    const blocked = (id: string) => byId.get(id)!.dependsOn.some((d) => ['failed', 'cancelled', 'not run'].includes(outcomes[d]?.status ?? '') && done.has(d));

    const runOne = async (id: string): Promise<void> => {
      const stage = byId.get(id)!;
      const decision = decisionOf.get(id)!;
      const controller = new AbortController();
      const onRunAbort = () => controller.abort(signal.reason);
      signal.addEventListener('abort', onRunAbort, { once: true });
      this.stageControllers.set(id, { key: stage.key, controller });
      const outcome: StageOutcome = { ...base(decision) };
      outcomes[id] = outcome;
      let releaseSlot: (() => void) | undefined;
      let releaseLock: (() => Promise<void>) | undefined;
      let tmp: string | undefined;
      let markCommitted: (ok: boolean) => void = () => undefined;
      committed.set(id, new Promise<boolean>((resolve) => { markCommitted = resolve; }));
      try {
        const module = await loadModule(opts.stages, stage.kind);
        const resource = stageResource(stage.kind, module as { resource?: unknown });
        releaseSlot = await (resource === 'device' ? deviceSlot : cpuSlot).acquire(controller.signal);
        releaseLock = await store.lock(stage.key, {
          signal: controller.signal,
          onWait: (pid) => reporter?.onStageWaiting?.(id, `waiting for process ${pid}, which is computing the same output`),
        });
        if (!decision.forced && store.has(stage.key)) {
          outcome.status = 'cached';
          outcome.reasons = ['produced meanwhile by a concurrent run'];
          return;
        }
        reporter?.onStageStart?.(id, decision);
        backend = await ensureBackend(plan.runtime.backend, plan.runtime.precision, opts.initBackend);
        controller.signal.throwIfAborted();
        tmp = await store.createTemp(stage.key);
        const ctx = this.context(stage, tmp, controller.signal, reporter);
        const startedAt = new Date();
        const t = performance.now();
        const rss = rssSampler();
        const meter = await openMeter();
        let result;
        try {
          try {
            result = await withDeviceChecks(backend, id, () => module.run(ctx));
          } finally {
            const gpu = meter.stop().gpu;
            if (gpu) outcome.gpu = gpu;
          }
          const inFlight = result?.pending;
          if (inFlight) {
            // The device work is done: free the slot and let stages that compute on the resident model start.
            releaseSlot?.();
            releaseSlot = undefined;
            writing.add(id);
            this.wake();
            await withDeviceChecks(backend, id, () => inFlight);
          }
        } finally {
          outcome.peakRssBytes = rss.stop();
        }
        controller.signal.throwIfAborted();
        await this.upstreamStored(stage, committed);
        outcome.wallMs = Math.round(performance.now() - t);
        outcome.startedAt = startedAt.toISOString();
        outcome.summary = result?.summary;
        await store.commit(tmp, {
          version: 1, key: stage.key, stageId: id, kind: stage.kind, keyInputs: stage.keyInputs, runId: this.runId,
          createdAt: new Date().toISOString(), wallMs: outcome.wallMs, peakRssBytes: outcome.peakRssBytes, gpu: outcome.gpu,
          backend: backend && { backend: backend.backend, adapter: backend.adapter }, summary: result?.summary,
        }, decision.forced);
        tmp = undefined;
        outcome.status = 'ran';
      } catch (e) {
        if (isCancellation(e, controller.signal)) {
          outcome.status = 'cancelled';
        } else {
          outcome.status = 'failed';
          outcome.error = e instanceof Error ? e.message : String(e);
          failure ??= { stageId: id, error: e };
        }
      } finally {
        markCommitted(outcome.status === 'ran' || outcome.status === 'cached');
        writing.delete(id);
        if (tmp) await store.discardTemp(tmp);
        await releaseLock?.();
        releaseSlot?.();
        signal.removeEventListener('abort', onRunAbort);
        this.stageControllers.delete(id);
        done.add(id);
        reporter?.onStageEnd?.(outcome);
      }
    };

    while (pending.length > 0 || running.size > 0) {
      if (!signal.aborted && !failure && !this.stopped) {
        for (let i = 0; i < pending.length; ) {
          const id = pending[i]!;
          if (blocked(id)) {
            pending.splice(i, 1);
            done.add(id);
            outcomes[id] = { ...base(decisionOf.get(id)!), status: 'not run', reasons: ['an upstream stage did not finish'] };
            continue;
          }
          if (ready(id)) {
            pending.splice(i, 1);
            running.set(id, runOne(id).finally(() => { running.delete(id); this.wake(); }));
            continue;
          }
          i++;
        }
      }
      if (running.size === 0) break;
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
    for (const id of pending) outcomes[id] ??= { ...base(decisionOf.get(id)!), status: 'not run' };

    if (!opts.keepModels || failure) this.residency.clear();
    const status: RunResult['status'] = failure ? 'failed' : Object.values(outcomes).some((o) => o.status === 'cancelled' || o.status === 'not run') ? 'cancelled' : 'ok';
    const ordered = Object.fromEntries(plan.stages.map((s) => [s.id, outcomes[s.id]!]));
    const models = this.residency.history.slice(historyStart);
    const result: RunResult = { runId: this.runId, status, plan, store: store.dir, decisions, stages: ordered, backend, wallMs: performance.now() - t0, failed: failure, models };
    reporter?.onRunEnd?.(result);
    return result;
  }

  /**
   * Waits for the upstream stages this one started beside (their writes in flight) to commit; refuses to store this
   * output when one did not, so the store never holds a stage whose inputs it lacks.
   */
  private async upstreamStored(stage: PlannedStage, committed: Map<string, Promise<boolean>>): Promise<void> {
    for (const d of stage.dependsOn) {
      const ok = committed.get(d);
      if (ok && !(await ok)) {
        throw new LopperError('LP7009', `stage ${stage.id} ran on the resident model of ${d}, which did not finish writing its output; ${stage.id}'s output is not stored`, {
          hint: `See ${d}'s error above; run again once it is fixed.`,
        });
      }
    }
  }

  private context(stage: PlannedStage, outDir: string, signal: AbortSignal, reporter: RunReporter | undefined): StageContext {
    const { plan, store } = this;
    const byId = new Map(plan.stages.map((s) => [s.id, s]));
    // Stage outputs record the model reference they were computed from (groups.json → "base"), so a stage may name
    // any stage upstream of it, not only its direct inputs, and any `models:` entry of the recipe.
    const ancestors = new Set<string>();
    const visit = (id: string) => {
      for (const d of byId.get(id)?.dependsOn ?? []) if (!ancestors.has(d)) { ancestors.add(d); visit(d); }
    };
    visit(stage.id);
    // `models:` entries read by any stage of the plan (a reference recorded in an upstream output, e.g. groups.json's
    // "model", may name one this stage does not list itself).
    const recipeModels = new Map<string, ModelRef>();
    for (const s of plan.stages) {
      for (const [name, path] of Object.entries(s.models)) {
        const ref = s.modelRefs?.[name] ?? { path };
        if (!recipeModels.has(name) || s.modelRefs?.[name]) recipeModels.set(name, ref);
      }
    }
    const upstream = (ref: string): PlannedStage | undefined => {
      const id = stage.stageRefs[ref] ?? ref;
      return ancestors.has(id) ? byId.get(id) : undefined;
    };
    const upstreamDir = (ref: string): string | undefined => {
      const up = upstream(ref);
      return up ? store.outputDir(up.key) : undefined;
    };
    const modelRef = (ref: string): ModelRef => {
      const path = stage.models[ref];
      if (path !== undefined) return { ...(stage.modelRefs?.[ref] ?? { path }), ...entryKey(plan, ref) };
      const up = upstream(ref);
      if (up !== undefined) return { path: `${store.outputDir(up.key)}/model`, key: outputModelKey(up.key) };
      const entry = recipeModels.get(ref);
      if (entry !== undefined) return { ...entry, ...entryKey(plan, ref) };
      throw new LopperError('LP7001', `stage ${stage.id} asked for model "${ref}", which is neither a models: entry nor a stage upstream of it`);
    };
    const stored = async (): Promise<UpstreamOutput[]> => {
      const out: UpstreamOutput[] = [];
      for (const s of plan.stages) {
        if (!ancestors.has(s.id)) continue;
        const ok = this.committed.get(s.id);
        if (ok ? await ok : store.has(s.key)) out.push({ id: s.id, kind: s.kind, dir: store.outputDir(s.key), dependsOn: s.dependsOn });
      }
      return out;
    };
    return {
      id: stage.id,
      params: stage.params,
      seed: plan.seed,
      recipeDir: plan.recipeDir,
      outDir,
      modelPath(ref) {
        return modelRef(ref).path;
      },
      model(ref) {
        return { ...modelRef(ref) };
      },
      stageDir(ref) {
        const dir = upstreamDir(ref);
        if (dir === undefined) throw new LopperError('LP7001', `stage ${stage.id} asked for the output of "${ref}", which is not a stage upstream of it`);
        return dir;
      },
      dataset(name): DatasetSpec {
        const d = stage.datasets[name];
        if (!d) throw new LopperError('LP7001', `stage ${stage.id} asked for dataset "${name}", which it does not declare`);
        return d;
      },
      progress: progressFor(stage.id, reporter),
      signal,
      log(line) { reporter?.onStageLog?.(stage.id, line); },
      residency: this.residency,
      outputModelKey: outputModelKey(stage.key),
      upstream: stored,
    };
  }
}
