// What the planner hands the runner: stage instances in topological order, each with everything that went into
// its cache key. `plan` is a pure function of (recipe, file hashes); the runner only executes it.
import type { DatasetSpec, ModelRef, OutputKind } from '../stages/types.js';

export type Backend = 'auto' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';

export interface PlannedStage {
  /** Instance id: the stage name, or `name@var=value,...` for matrix instances. */
  id: string;
  /** The stage id as written under `stages:` (equal to `id` unless the stage is matrix-expanded). */
  name: string;
  /** Matrix values this instance is bound to, its own and those inherited from the stages it reads ({} if none). */
  matrix: Record<string, string | number | boolean>;
  kind: string;
  outputKind: OutputKind;
  /** The resolved stage entry (vars substituted, matrix values applied, schema defaults filled). */
  params: Record<string, unknown>;
  /** Upstream stage instance ids this stage reads (in params order). */
  dependsOn: string[];
  /** Reference name (as written in params) → upstream stage instance id, for stage references. */
  stageRefs: Record<string, string>;
  /** `models:` entries this stage reads: reference name → absolute path. */
  models: Record<string, string>;
  /** The same entries with their `tokenizer:` / `format:` (absolute paths); absent in plans built before it existed. */
  modelRefs?: Record<string, ModelRef>;
  datasets: Record<string, DatasetSpec>;
  /** Absolute paths of every file this stage reads directly (model files, dataset files): hashed and watched. */
  files: string[];
  /** Cache key: hex sha256 of the canonical JSON of `keyInputs`. */
  key: string;
  /** Exactly what the key hashes: kind, version, params, upstream keys, file hashes, seed, numerics. */
  keyInputs: Record<string, unknown>;
}

export interface Plan {
  recipePath: string;
  recipeDir: string;
  name: string;
  seed: number;
  runtime: { backend: Backend; precision: 'float32' | 'mixed' };
  /** Absolute path of the stage store (`store:`, default `.lopper` next to the recipe). */
  store: string;
  stages: PlannedStage[];
}
