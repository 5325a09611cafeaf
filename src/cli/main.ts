#!/usr/bin/env node
// The lopper command line: parses arguments and prints; every command is a thin layer over src/index.ts.
// To add a command: one module under src/cli/commands/ exporting a CliCommand, and one line in `commands` below.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { CliCommand } from './command.js';
import { reportFailure } from './report.js';
import { validateCommand } from './commands/validate.js';
import { planCommand } from './commands/plan.js';
import { graphCommand } from './commands/graph.js';
import { runCommandSpec } from './commands/run.js';
import { explainCommandSpec } from './commands/explain.js';
import { watchCommandSpec } from './commands/watch.js';
import { cacheCommandSpec } from './commands/cache.js';
import { showCommandSpec } from './commands/show.js';
import { compareCommandSpec } from './commands/compare.js';
import { inspectCommand } from './commands/inspect.js';
import { exportCommandSpec } from './commands/export.js';
import { reportCommandSpec } from './commands/report.js';

const commands: CliCommand[] = [
  validateCommand,
  planCommand,
  graphCommand,
  inspectCommand,
  runCommandSpec,
  explainCommandSpec,
  watchCommandSpec,
  cacheCommandSpec,
  showCommandSpec,
  compareCommandSpec,
  reportCommandSpec,
  exportCommandSpec,
];

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function createProgram(): Command {
  const program = new Command('lopper')
    .description('declarative pipelines for structured pruning of LLMs (LLM-Pruner semantics)')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false, showGlobalOptions: true });
  for (const c of commands) c.register(program);
  return program;
}

// `lopper plan … | head` closes the pipe early: that is the reader being done, not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

try {
  await createProgram().parseAsync(process.argv);
} catch (e) {
  process.exitCode = reportFailure(e);
}
