// Watch mode's report: <store>/report.html rewritten after every stage that ends, from the plan and the outcomes so
// far (stages still to run are listed as missing), with the page reloading itself. Writes are serialized and
// coalesced: a burst of cached stages becomes one or two writes, not one per stage.
import { join } from 'node:path';
import type { Plan } from '../plan/types.js';
import type { Store } from '../run/store.js';
import type { StageOutcome } from '../run/types.js';
import { renderReport, writeReportFile } from './index.js';
import { sourceFromOutcomes } from './source.js';

export const LIVE_REPORT_FILE = 'report.html';

export interface LiveReport {
  /** A run starts: its plan, with no outcome yet. */
  start(plan: Plan, runId: string): void;
  stageEnded(outcome: StageOutcome): void;
  /** Resolves when the writes asked for so far are on disk. */
  flushed(): Promise<void>;
  readonly path: string;
}

export function liveReport(store: Store, onError: (e: unknown) => void): LiveReport {
  const path = join(store.dir, LIVE_REPORT_FILE);
  let plan: Plan | undefined;
  let runId: string | undefined;
  let outcomes = new Map<string, StageOutcome>();
  let chain: Promise<void> = Promise.resolve();
  let queued = false;
  const write = () => {
    if (queued || !plan) return;
    queued = true;
    chain = chain.then(async () => {
      queued = false;
      const { html } = await renderReport(sourceFromOutcomes(plan!, outcomes, store.dir, (key) => store.outputDir(key), runId), { live: true });
      await writeReportFile(path, html);
    }).catch(onError);
  };
  return {
    path,
    start(p, id) {
      plan = p;
      runId = id;
      outcomes = new Map();
      write();
    },
    stageEnded(o) {
      outcomes.set(o.id, o);
      write();
    },
    flushed: () => chain,
  };
}
