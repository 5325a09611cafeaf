// `lopper plan FILE`: the stage instances in execution order, with their inputs and cache keys; the text form also
// says, per stage, whether the store already holds its output or it will run, and why (as `lopper explain`).
// `--json` prints the plan alone, which depends only on the recipe and the files it reads.
import type { Command } from 'commander';
import { plan } from '../../plan/api.js';
import type { Plan } from '../../plan/types.js';
import { methodSummary } from '../../plan/method-summary.js';
import { explainStages } from '../../run/plan-report.js';
import { storeFor } from '../../run/run.js';
import type { CliCommand } from '../command.js';
import { withOptions } from '../options.js';
import type { CommonOptions } from '../options.js';
import { action } from '../report.js';

interface PlanCommandOptions extends CommonOptions { json?: boolean }

/** Per stage id: `cached`, or `will run` with the reasons. */
export type StageStatus = Map<string, { status: string; reasons: string[] }>;

export function formatPlan(p: Plan, statuses?: StageStatus): string {
  const width = Math.max(...p.stages.map((s) => s.id.length), 5);
  const kindWidth = Math.max(...p.stages.map((s) => s.kind.length), 4);
  const lines = [`${p.name}: ${p.stages.length} stage${p.stages.length === 1 ? '' : 's'} (seed ${p.seed}, backend ${p.runtime.backend}, ${p.runtime.precision})`, ''];
  const statusHeader = statuses ? 'status    ' : '';
  lines.push(`  ${'stage'.padEnd(width)}  ${'kind'.padEnd(kindWidth)}  ${statusHeader}key           inputs`);
  for (const s of p.stages) {
    const inputs = [...s.dependsOn, ...Object.keys(s.models).filter((m) => !s.dependsOn.includes(m)), ...Object.keys(s.datasets)];
    const st = statuses?.get(s.id);
    const status = statuses ? `${(st?.status ?? '').padEnd(8)}  ` : '';
    lines.push(`  ${s.id.padEnd(width)}  ${s.kind.padEnd(kindWidth)}  ${status}${s.key.slice(0, 12)}  ${inputs.join(', ') || '-'}`);
    const method = methodSummary(s.kind, s.params);
    if (method) lines.push(`  ${' '.repeat(width)}  ${' '.repeat(kindWidth)}    method: ${method}`);
    if (st && st.status !== 'cached') for (const r of st.reasons.filter((x) => !x.startsWith('never ran'))) lines.push(`  ${' '.repeat(width)}  ${' '.repeat(kindWidth)}    ${r}`);
  }
  return lines.join('\n') + '\n';
}

async function stageStatuses(p: Plan): Promise<StageStatus> {
  const decisions = await explainStages(p, storeFor(p));
  return new Map(decisions.map((d) => [d.id, { status: d.action === 'cached' ? 'cached' : d.action === 'run' ? 'will run' : 'skipped', reasons: d.reasons }]));
}

export const planCommand: CliCommand = {
  name: 'plan',
  register(program: Command) {
    withOptions(program.command('plan'), ['json'])
      .description('resolve a recipe into stage instances in execution order, with their inputs and cache keys')
      .argument('<file>', 'recipe file')
      .action(action(async (file: string, opts: PlanCommandOptions) => {
        const p = await plan(file, { set: opts.set, backend: opts.backend });
        process.stdout.write(opts.json ? `${JSON.stringify(p, null, 2)}\n` : formatPlan(p, await stageStatuses(p)));
      }));
  },
};
