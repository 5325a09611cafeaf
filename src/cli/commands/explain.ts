// lopper explain FILE [STAGE]: per stage cached or will run, and why (which field, file, upstream key or numerics
// setting changed since the newest stored output of that stage); with STAGE, also what its key is made of.
import type { Command } from 'commander';
import { LopperError } from '../../errors/lopper-error.js';
import { explainStages, formatDecisionLine } from '../../run/plan-report.js';
import { methodSummary } from '../../plan/method-summary.js';
import { resolvePlan, storeFor } from '../../run/run.js';
import type { CliCommand } from '../command.js';
import { withOptions, type CommonOptions } from '../options.js';
import { action } from '../report.js';

interface ExplainOptions extends CommonOptions { store?: string; json?: boolean; force?: boolean | string[]; only?: string[]; from?: string }

const statusOf = (action: string) => (action === 'run' ? 'will run' : action === 'cached' ? 'cached' : 'skipped');

export async function explainCommand(file: string, stageId: string | undefined, o: ExplainOptions): Promise<number> {
  const plan = await resolvePlan(file, { set: o.set, backend: o.backend, store: o.store });
  const store = storeFor(plan, o.store);
  const ex = await explainStages(plan, store, o);
  if (stageId === undefined) {
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ store: store.dir, stages: Object.fromEntries(ex.map((e) => [e.id, { status: statusOf(e.action), key: e.key, reasons: e.reasons, output: e.output }])) })}\n`);
    } else {
      const width = Math.max(...ex.map((e) => e.id.length));
      for (const e of ex) process.stdout.write(`${formatDecisionLine(e, width)}\n`);
    }
    return 0;
  }
  const e = ex.find((x) => x.id === stageId);
  if (!e) throw new LopperError('LP7001', `no stage "${stageId}" in ${file}`, { hint: `stages: ${ex.map((x) => x.id).join(', ')}` });
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ ...e, status: statusOf(e.action) })}\n`);
    return 0;
  }
  const lines = [`${e.id} (${e.kind}): ${statusOf(e.action)}`, `  key     ${e.key}`, `  output  ${e.output}`];
  const method = methodSummary(e.kind, plan.stages.find((s) => s.id === e.id)!.params);
  if (method) lines.push(`  method  ${method}`);
  if (e.previous) lines.push(`  newest stored output of ${e.id}: ${e.previous.key.slice(0, 12)}, run ${e.previous.runId} (${e.previous.createdAt})`);
  if (e.reasons.length) lines.push('  because:', ...e.reasons.map((r) => `    - ${r}`));
  lines.push('  key inputs:', ...JSON.stringify(e.keyInputs, null, 2).split('\n').map((l) => `    ${l}`));
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

export const explainCommandSpec: CliCommand = {
  name: 'explain',
  register(program: Command) {
    withOptions(program.command('explain'), ['json'])
      .description('per stage: cached or will run, and why; with a stage, also the inputs of its cache key')
      .argument('<file>', 'recipe file')
      .argument('[stage]', 'stage instance id')
      .option('--store <dir>', 'store directory')
      .option('--force [stages...]', 'as lopper run --force')
      .option('--only <stages...>', 'as lopper run --only')
      .option('--from <stage>', 'as lopper run --from')
      .action(action(async (file: string, stage: string | undefined, o: ExplainOptions) => explainCommand(file, stage, o)));
  },
};
