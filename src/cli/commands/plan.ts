// `lopper plan FILE`: the stage instances in execution order, with their inputs and cache keys.
import type { Command } from 'commander';
import { plan } from '../../plan/api.js';
import type { Plan } from '../../plan/types.js';
import type { CliCommand } from '../command.js';
import { withOptions } from '../options.js';
import type { CommonOptions } from '../options.js';
import { action } from '../report.js';

interface PlanCommandOptions extends CommonOptions { json?: boolean }

export function formatPlan(p: Plan): string {
  const width = Math.max(...p.stages.map((s) => s.id.length), 5);
  const kindWidth = Math.max(...p.stages.map((s) => s.kind.length), 4);
  const lines = [`${p.name}: ${p.stages.length} stage${p.stages.length === 1 ? '' : 's'} (seed ${p.seed}, backend ${p.runtime.backend}, ${p.runtime.precision})`, ''];
  lines.push(`  ${'stage'.padEnd(width)}  ${'kind'.padEnd(kindWidth)}  key           inputs`);
  for (const s of p.stages) {
    const inputs = [...s.dependsOn, ...Object.keys(s.models).filter((m) => !s.dependsOn.includes(m)), ...Object.keys(s.datasets)];
    lines.push(`  ${s.id.padEnd(width)}  ${s.kind.padEnd(kindWidth)}  ${s.key.slice(0, 12)}  ${inputs.join(', ') || '-'}`);
  }
  return lines.join('\n') + '\n';
}

export const planCommand: CliCommand = {
  name: 'plan',
  register(program: Command) {
    withOptions(program.command('plan'), ['json'])
      .description('resolve a recipe into stage instances in execution order, with their inputs and cache keys')
      .argument('<file>', 'recipe file')
      .action(action(async (file: string, opts: PlanCommandOptions) => {
        const p = await plan(file, { set: opts.set, backend: opts.backend });
        process.stdout.write(opts.json ? `${JSON.stringify(p, null, 2)}\n` : formatPlan(p));
      }));
  },
};
