// Which stage outputs a report reads: a run record's stages (`lopper report`), a plan with the outcomes so far
// (watch mode, mid-run), or the stored stages upstream of an evaluate stage (its own report.html).
import type { Plan } from '../plan/types.js';
import type { RunRecord } from '../run/provenance.js';
import type { StageOutcome } from '../run/types.js';

export interface ReportStage {
  id: string;
  kind: string;
  /** ran | cached | failed | cancelled | not run | skipped | will run (a run in progress has no outcome yet). */
  status: string;
  /** The stage's output directory in the store. */
  dir: string;
  dependsOn: string[];
  error?: string;
}

export interface ReportRunInfo {
  id: string;
  startedAt?: string;
  status: string;
  backend?: string | null;
  wallMs?: number;
  command?: string;
}

export interface ReportSource {
  /** The recipe's name. */
  title: string;
  /** Printed in the page; absent for an evaluate stage's own page (content-addressed: no paths). */
  storeDir?: string;
  run?: ReportRunInfo;
  stages: ReportStage[];
  /** What is missing before any stage is read (e.g. "no run recorded"). */
  missing?: string[];
}

export function sourceFromRun(record: RunRecord, storeDir: string): ReportSource {
  return {
    title: record.recipe.name,
    storeDir,
    run: { id: record.id, startedAt: record.startedAt, status: record.status, backend: record.backend.backend, wallMs: record.wallMs, command: record.command },
    stages: Object.entries(record.stages).map(([id, s]) => ({
      id, kind: s.kind, status: s.status, dir: s.output, dependsOn: record.recipe.resolved.stages[id]?.dependsOn ?? [], error: s.error,
    })),
  };
}

/** A run in progress: stages without an outcome yet are "will run". */
export function sourceFromOutcomes(plan: Plan, outcomes: ReadonlyMap<string, StageOutcome>, storeDir: string, outputDir: (key: string) => string, runId?: string): ReportSource {
  const all = plan.stages.map((s) => outcomes.get(s.id));
  const finished = all.every((o) => o !== undefined);
  return {
    title: plan.name,
    storeDir,
    ...(runId ? { run: { id: runId, status: finished ? 'finished' : 'running' } } : {}),
    stages: plan.stages.map((s) => {
      const o = outcomes.get(s.id);
      return { id: s.id, kind: s.kind, status: o?.status ?? 'will run', dir: o?.output ?? outputDir(s.key), dependsOn: s.dependsOn, error: o?.error };
    }),
  };
}

export function emptySource(title: string, storeDir: string, why: string): ReportSource {
  return { title, storeDir, stages: [], missing: [why] };
}
