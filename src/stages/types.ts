// The contract between the runner and one stage kind. A stage reads its inputs from disk (model directories,
// upstream stage directories, dataset files) and writes everything it produces under `outDir`; the runner
// makes that directory appear atomically under the stage's cache key. The one in-memory link between stages is the
// model residency: a model read or derived once is shared by key instead of being read again (outputs and keys are
// the same either way).

import type { ModelResidency } from '../model/residency.js';

export type OutputKind = 'model' | 'groups' | 'scores' | 'importance' | 'metrics';

export interface DatasetSpec {
  name: string;
  /** Absolute path. */
  path: string;
  format: 'text' | 'jsonl' | 'multiple-choice' | 'alpaca';
  /** Zero-shot template name for multiple-choice datasets. */
  template?: string;
  /** Other fields of the dataset entry, as written in the recipe (e.g. `field` for jsonl). */
  options: Record<string, unknown>;
}

/** A model a stage reads, as the loader needs it (src/model loadModel(path, { tokenizer, format })). */
export interface ModelRef {
  /** Absolute path: a `models:` entry's path, or `<output>/model` of an upstream model-producing stage. */
  path: string;
  /** Absolute path of the entry's `tokenizer:` file, when the recipe names one. */
  tokenizer?: string;
  /** The entry's `format:`, when the recipe names one. */
  format?: 'hf' | 'llama2c' | 'gguf';
  /**
   * Content key of the model (the planner's hash of the entry's files, or the key of the stage that wrote it): the
   * model residency shares one loaded copy per key. Absent in hand-built contexts: the path stands in for it.
   */
  key?: string;
}

export interface ProgressReporter {
  /** Starts a phase (e.g. "windows", "steps") with a known total. */
  start(phase: string, total: number): void;
  /** Advances the current phase by `n` (default 1). */
  tick(n?: number): void;
  /** A short status line (e.g. "loss 2.31"). */
  note(message: string): void;
}

/** A stored stage upstream of the one running (StageContext.upstream). */
export interface UpstreamOutput {
  id: string;
  kind: string;
  /** Its committed output directory. */
  dir: string;
  dependsOn: string[];
}

export interface StageContext {
  /** Stage instance id, e.g. `pruned` or `pruned@ratio=0.25`. */
  id: string;
  /** The stage's resolved entry from the recipe (vars substituted, defaults applied), `kind` included. */
  params: Record<string, unknown>;
  seed: number;
  /** Directory of the recipe file; relative paths in params resolve against it. */
  recipeDir: string;
  /** Empty directory the stage writes its outputs into. */
  outDir: string;
  /** Path of a model: a `models:` entry's path, or `<output>/model` of an upstream model-producing stage. */
  modelPath(ref: string): string;
  /**
   * A model with everything its `models:` entry says (path, tokenizer, format); `{ path: <output>/model }` for an
   * upstream stage. Stages load models through this (src/stages/model-ref.ts loadModelRef), never modelPath alone,
   * so a tokenizer kept elsewhere reaches the loader.
   */
  model(ref: string): ModelRef;
  /** Output directory of an upstream stage named in params. */
  stageDir(ref: string): string;
  dataset(name: string): DatasetSpec;
  progress: ProgressReporter;
  /** Aborted when the run is cancelled (Ctrl-C, watch-mode change): check between batches and throw. */
  signal: AbortSignal;
  log(line: string): void;
  /** The process's model residency (src/model/residency.ts); absent in hand-built contexts: the shared one. */
  residency?: ModelResidency;
  /** Residency key of this stage's own output model (model-producing stages adopt what they computed under it). */
  outputModelKey?: string;
  /**
   * Every stage upstream of this one (transitively), in plan order, once each is stored: waits for the ones whose
   * writes are still in flight (StageResult.pending) to commit, so their files can be read; one that failed to
   * commit is left out. Absent in hand-built contexts.
   */
  upstream?(): Promise<UpstreamOutput[]>;
}

export interface StageResult {
  /** Small JSON-able summary for the run record (e.g. metrics, params_after). */
  summary?: Record<string, unknown>;
  /**
   * Work still in flight when `run` returns (a model's files being written): the output is committed once it
   * settles, and the stage fails if it rejects. Meanwhile the device slot is free and stages that read this one's
   * models through the residency only (`readsResidentModels`) may start.
   */
  pending?: Promise<void>;
}

export interface StageModule {
  kind: string;
  /** Bumped whenever the stage's numerics or outputs change: part of the cache key. */
  version: string;
  outputKind: OutputKind;
  run(ctx: StageContext): Promise<StageResult | void>;
  /**
   * The stage reads its upstream stages' models through the residency (acquireModel) and no other upstream file,
   * so it may start while an upstream model is still being written (StageResult.pending).
   */
  readsResidentModels?: boolean;
}
