// The bridge to the planner (src/dsl + src/plan, owned by another area): loaded lazily so `lopper cache` and
// `lopper show` never pay for it, and given the memoized file hasher.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { LopperError } from '../errors/lopper-error.js';
import type { Plan } from '../plan/types.js';
import type { FileHasher } from './file-hash.js';
import { cachedPlan } from './plan-cache.js';

export interface PlanOptions { set?: string[]; backend?: string; hashFile: (path: string) => Promise<string> }
export type PlanFunction = (recipePath: string, opts: PlanOptions) => Promise<Plan>;

let planner: Promise<PlanFunction> | undefined;

export function loadPlanner(): Promise<PlanFunction> {
  planner ??= (async () => {
    for (const spec of ['../index.js', '../plan/index.js']) {
      try {
        const mod = (await import(spec)) as { plan?: unknown };
        if (typeof mod.plan === 'function') return mod.plan as PlanFunction;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
      }
    }
    throw new LopperError('LP7005', 'the recipe planner (plan() in src/index.ts or src/plan/index.ts) is not available in this build');
  })();
  planner.catch(() => { planner = undefined; });
  return planner;
}

/**
 * The store directory of a recipe: its `store:` field (relative to the recipe) or `.lopper` next to it. Read with a
 * plain YAML parse so commands that only need the store don't load the planner.
 */
export function storeDirFor(recipePath: string, override?: string): string {
  const recipeDir = dirname(resolve(recipePath));
  if (override) return resolve(override);
  try {
    const doc = parse(readFileSync(recipePath, 'utf8')) as { store?: unknown } | null;
    if (doc && typeof doc.store === 'string' && doc.store.length > 0) return resolve(recipeDir, doc.store);
  } catch { /* the planner reports a broken recipe properly */ }
  return resolve(recipeDir, '.lopper');
}

export interface PlanRecipeOptions {
  set?: string[];
  backend?: string;
  planFn?: PlanFunction;
  /** Reuse a stored plan when nothing it depends on changed (plan-cache.ts); default: on for the project's planner. */
  planCache?: boolean;
  /** Where the plan cache lives (default: the hasher's store). */
  storeDir?: string;
}

export async function planRecipe(recipePath: string, hasher: FileHasher, opts: PlanRecipeOptions = {}): Promise<Plan> {
  const abs = resolve(recipePath);
  const compute = async () => {
    const fn = opts.planFn ?? (await loadPlanner());
    const plan = await fn(abs, { set: opts.set, backend: opts.backend, hashFile: hasher.hashFile });
    await hasher.flush();
    return plan;
  };
  if (!(opts.planCache ?? opts.planFn === undefined)) return compute();
  const storeDir = opts.storeDir ?? storeDirFor(abs);
  return (await cachedPlan(storeDir, abs, { set: opts.set, backend: opts.backend }, compute)).plan;
}
