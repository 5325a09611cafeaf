// lopper run FILE: plan, run, print progress and (with --json) the stage table as the last stdout line.
import type { Command } from 'commander';
import type { CliCommand } from '../command.js';
import { withOptions } from '../options.js';
import { action } from '../report.js';
import { PlainReporter, ListrReporter, useFancyRenderer } from '../../run/progress.js';
import { formatDecisionLine } from '../../run/plan-report.js';
import { run } from '../../run/run.js';
import type { RunReporter, RunResult } from '../../run/types.js';

export interface RunCommandOptions {
  force?: boolean | string[]; only?: string[]; from?: string; dryRun?: boolean; json?: boolean;
  set?: string[]; backend?: string; store?: string; jobs?: string;
}

export function stageTable(result: RunResult): { stages: Record<string, { status: string; output: string }>; models?: RunResult['models'] } {
  return {
    stages: Object.fromEntries(Object.values(result.stages).filter((s) => s.status !== 'skipped').map((s) => [s.id, { status: s.status, output: s.output }])),
    ...(result.models?.length ? { models: result.models } : {}),
  };
}

export async function runCommand(file: string, o: RunCommandOptions): Promise<number> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write('\nlopper: interrupted — abandoning the stage in flight (Ctrl-C again to exit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const fancy = !o.json && !o.dryRun && useFancyRenderer(process.stdout);
  const listr = fancy ? new ListrReporter() : undefined;
  const reporter: RunReporter | undefined = o.dryRun ? undefined : listr ?? new PlainReporter(o.json ? process.stderr : process.stdout);
  try {
    const result = await run(file, {
      force: o.force, only: o.only, from: o.from, dryRun: o.dryRun, set: o.set, backend: o.backend, store: o.store,
      jobs: o.jobs ? Number(o.jobs) : undefined, signal: controller.signal, reporter,
      command: ['lopper', ...process.argv.slice(2)].join(' '),
    });
    await listr?.finished();
    if (o.dryRun) {
      const width = Math.max(...result.decisions.map((d) => d.id.length));
      for (const d of result.decisions) process.stdout.write(`${formatDecisionLine(d, width)}\n`);
      const n = result.decisions.filter((d) => d.action === 'run').length;
      process.stdout.write(`${n} of ${result.decisions.length} stages would run (store ${result.store})\n`);
    }
    if (o.json) process.stdout.write(`${JSON.stringify(stageTable(result))}\n`);
    return 0;
  } catch (e) {
    await listr?.finished();
    const result = (e as { result?: RunResult }).result;
    if (result?.status === 'cancelled') {
      process.stderr.write('lopper: run interrupted; finished stages are stored, the next run resumes after them\n');
      if (o.json) process.stdout.write(`${JSON.stringify(stageTable(result))}\n`);
      return 130;
    }
    if (o.json && result) process.stdout.write(`${JSON.stringify(stageTable(result))}\n`);
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

export const runCommandSpec: CliCommand = {
  name: 'run',
  register(program: Command) {
    withOptions(program.command('run'), ['json'])
      .description('run a recipe: cached stages are reused, the rest run in DAG order (Ctrl-C stops cleanly)')
      .argument('<file>', 'recipe file')
      .option('-f, --force [stages...]', 'rerun every stage, or only the named ones')
      .option('--only <stages...>', 'run only these stages (and the upstream stages they need)')
      .option('--from <stage>', 'rerun this stage and everything downstream of it')
      .option('-n, --dry-run', 'print exactly what would run and why; run nothing')
      .option('--store <dir>', 'store directory (default: the recipe\'s store:, or .lopper next to it)')
      .option('-j, --jobs <n>', 'parallel CPU stages (device stages always share one slot)')
      .action(action(async (file: string, o: RunCommandOptions) => runCommand(file, o)));
  },
};
