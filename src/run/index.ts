// The runner's public surface.
export { run, startRun, resolvePlan, storeFor, type RunCallOptions } from './run.js';
export { decide, Execution } from './executor.js';
export { explainStages, type StageExplanation } from './plan-report.js';
export { watch, type WatchOptions, type WatchHandle } from './watch.js';
export { Store, type StageMeta, type StoreEntry } from './store.js';
export { createFileHasher, type FileHasher } from './file-hash.js';
export { storeDirFor, loadPlanner, type PlanFunction } from './planner.js';
export { listRuns, findRun, lockfilePath, type RunRecord } from './provenance.js';
export { compareRuns, type RunComparison } from './compare.js';
export type { RunOptions, RunResult, RunReporter, StageOutcome, StageDecision, StageStatus, ProgressState } from './types.js';
