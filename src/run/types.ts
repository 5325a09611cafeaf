// Public types of the runner: options, per-stage outcomes, the result of a run, and the events progress
// renderers subscribe to.
import type { Plan } from '../plan/types.js';
import type { StageModule } from '../stages/types.js';
import type { GpuUsage } from '../backend/meter.js';
import type { LoadRecord, ModelResidency } from '../model/residency.js';
import type { BackendInfo, BackendInit } from './backend-init.js';

export type StageStatus = 'ran' | 'cached' | 'will run' | 'skipped' | 'failed' | 'cancelled' | 'not run';

/** What the planner decided for one stage before anything ran (the same code path for run, --dry-run and plan). */
export interface StageDecision {
  id: string;
  kind: string;
  key: string;
  action: 'cached' | 'run' | 'skip';
  /** Why it runs (field-level diff, "forced", …), or why it is skipped / cached. */
  reasons: string[];
  forced: boolean;
  resource: 'cpu' | 'device';
}

export interface StageOutcome {
  id: string;
  kind: string;
  key: string;
  status: StageStatus;
  /** The stage's output directory in the store. */
  output: string;
  reasons: string[];
  startedAt?: string;
  wallMs?: number;
  peakRssBytes?: number;
  /** On WebGPU: peak GPU bytes in use and pooled while the stage ran, and the shaders it compiled. */
  gpu?: GpuUsage;
  summary?: Record<string, unknown>;
  error?: string;
}

export interface ProgressState { phase: string; done: number; total: number; etaMs?: number }

export interface RunReporter {
  onDecisions?(decisions: StageDecision[], plan: Plan): void;
  onStageStart?(id: string, decision: StageDecision): void;
  onStageWaiting?(id: string, why: string): void;
  onStageProgress?(id: string, state: ProgressState): void;
  onStageNote?(id: string, message: string): void;
  onStageLog?(id: string, line: string): void;
  onStageEnd?(outcome: StageOutcome): void;
  onRunEnd?(result: RunResult): void;
}

export type StageModuleSource = ReadonlyMap<string, StageModule> | ((kind: string) => Promise<StageModule>);

export interface RunOptions {
  /** Store directory (default: recipe `store:` or `.lopper` next to the recipe). */
  store?: string;
  /** true: every selected stage; a list: those stage ids. */
  force?: boolean | string[];
  /** Run only these stages, with the upstream stages they need. */
  only?: string[];
  /** Rerun this stage and everything downstream of it. */
  from?: string;
  dryRun?: boolean;
  signal?: AbortSignal;
  /** Stage modules by kind (default: src/stages/registry.ts, imported lazily). */
  stages?: StageModuleSource;
  /** Parallel CPU stages (device stages always share one slot). Default 2. */
  jobs?: number;
  initBackend?: BackendInit;
  reporter?: RunReporter;
  /** Write <recipe>.lock (default true unless dryRun). */
  lockfile?: boolean;
  /** Write a run record (default true unless dryRun). */
  record?: boolean;
  /** Planner options when planning from a path. */
  set?: string[];
  backend?: string;
  /** Recorded in the run record (e.g. "lopper run r.yaml --force"). */
  command?: string;
  /** The model residency stages share (default: the process's). */
  residency?: ModelResidency;
  /** Keep resident models after the run (watch mode); by default the run frees the models no one holds. */
  keepModels?: boolean;
}

export interface RunResult {
  runId: string;
  status: 'ok' | 'failed' | 'cancelled' | 'dry-run';
  plan: Plan;
  store: string;
  decisions: StageDecision[];
  stages: Record<string, StageOutcome>;
  backend?: BackendInfo;
  wallMs: number;
  recordPath?: string;
  lockfilePath?: string;
  failed?: { stageId: string; error: unknown };
  /** Models this run read from disk or derived on the device (the residency's records), in order. */
  models?: LoadRecord[];
}
