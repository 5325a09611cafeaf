// `lopper plan` / `lopper explain`: the decisions of a run that is not started, with what each key is made of.
import type { Plan } from '../plan/types.js';
import { decide } from './executor.js';
import type { Store } from './store.js';
import type { RunOptions, StageDecision } from './types.js';

export interface StageExplanation extends StageDecision {
  output: string;
  keyInputs: Record<string, unknown>;
  /** The newest stored output of this stage id, if any (what the reasons diff against). */
  previous?: { key: string; createdAt: string; runId: string };
}

export async function explainStages(plan: Plan, store: Store, opts: Pick<RunOptions, 'force' | 'only' | 'from'> = {}): Promise<StageExplanation[]> {
  const decisions = await decide(plan, store, opts);
  const out: StageExplanation[] = [];
  for (const d of decisions) {
    const stage = plan.stages.find((s) => s.id === d.id)!;
    const prev = await store.newestFor(d.id);
    out.push({
      ...d,
      output: store.outputDir(d.key),
      keyInputs: stage.keyInputs,
      previous: prev && { key: prev.key, createdAt: prev.createdAt, runId: prev.runId },
    });
  }
  return out;
}

export function formatDecisionLine(d: StageDecision, width: number): string {
  const status = d.action === 'cached' ? 'cached' : d.action === 'run' ? 'will run' : 'skipped';
  const why = d.action === 'cached' ? '' : `  ${d.reasons.join('; ')}`;
  return `${d.id.padEnd(width)}  ${status.padEnd(8)}  ${d.key.slice(0, 12)}${why}`;
}
