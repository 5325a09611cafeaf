// run(planOrPath, opts): plan (if given a path), execute, then write the run record and the lockfile.
import { LopperError } from '../errors/lopper-error.js';
import type { Plan } from '../plan/types.js';
import { Execution } from './executor.js';
import { createFileHasher, type FileHasher } from './file-hash.js';
import { planRecipe, storeDirFor, type PlanFunction } from './planner.js';
import { buildRunRecord, gitInfo, writeLockfile, writeRunRecord } from './provenance.js';
import { Store } from './store.js';
import type { RunOptions, RunResult } from './types.js';

export interface RunCallOptions extends RunOptions {
  /** Planner to use instead of the project's (tests, embedding). */
  planFn?: PlanFunction;
  /** Reuse the stored plan when the recipe, lopper's code and every input file are unchanged (default: on with the project's planner). */
  planCache?: boolean;
}

export function storeFor(plan: Plan, override?: string): Store {
  return new Store(override ?? plan.store ?? storeDirFor(plan.recipePath));
}

export async function resolvePlan(planOrPath: Plan | string, opts: RunCallOptions): Promise<Plan> {
  if (typeof planOrPath !== 'string') return planOrPath;
  const storeDir = storeDirFor(planOrPath, opts.store);
  return planRecipe(planOrPath, hasherFor(storeDir), { set: opts.set, backend: opts.backend, planFn: opts.planFn, planCache: opts.planCache, storeDir });
}

/** One memoized hasher per store and process (watch mode and repeated runs share the memo). */
const hashers = new Map<string, FileHasher>();
function hasherFor(storeDir: string): FileHasher {
  let h = hashers.get(storeDir);
  if (!h) { h = createFileHasher(storeDir); hashers.set(storeDir, h); }
  return h;
}

/** Starts a run and returns its Execution (watch mode keeps the handle to cancel stages). */
export function startRun(plan: Plan, opts: RunOptions & { gitAfterRun?: boolean }, store = storeFor(plan, opts.store)): { execution: Execution; done: Promise<RunResult> } {
  const startedAt = new Date();
  // Spawning git blocks the event loop for a moment: watch mode asks for it after the run, so a rerun starts sooner.
  const git = opts.dryRun || opts.record === false || opts.gitAfterRun ? undefined : gitInfo(plan.recipeDir);
  const execution = new Execution(plan, store, opts);
  const done = execution.result.then(async (result) => {
    if (opts.dryRun) return result;
    if (opts.record !== false) {
      const record = await buildRunRecord(result, store, { startedAt, git: await (git ?? gitInfo(plan.recipeDir)), set: opts.set, command: opts.command });
      result.recordPath = await writeRunRecord(store, record);
    }
    if (opts.lockfile !== false && result.status === 'ok') {
      const hasher = hasherFor(store.dir);
      result.lockfilePath = await writeLockfile(plan, store, hasher.hashFile);
      await hasher.flush();
    }
    return result;
  });
  return { execution, done };
}

/**
 * Plans (when given a recipe path) and runs a recipe. Resolves with the result when every selected stage ran or was
 * cached; throws LP7002 when a stage failed and LP7006 when the run was cancelled (the result is on `error.result`).
 */
export async function run(planOrPath: Plan | string, opts: RunCallOptions = {}): Promise<RunResult> {
  const plan = await resolvePlan(planOrPath, opts);
  const { done } = startRun(plan, opts);
  const result = await done;
  if (result.status === 'failed') {
    const { stageId, error } = result.failed!;
    if (error instanceof LopperError) throw Object.assign(error, { result });
    const msg = error instanceof Error ? error.message : String(error);
    throw Object.assign(new LopperError('LP7002', `stage ${stageId} failed: ${msg}`, { cause: error }), { result });
  }
  if (result.status === 'cancelled') {
    throw Object.assign(new LopperError('LP7006', 'the run was interrupted; finished stages are stored and the next run resumes after them'), { result });
  }
  return result;
}
