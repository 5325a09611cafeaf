// lopper show [FILE] [RUN]: the recorded runs, or one run's provenance.
import type { Command } from 'commander';
import { formatRun, formatRuns } from '../../run/listing.js';
import { storeDirFor } from '../../run/planner.js';
import { findRun, listRuns } from '../../run/provenance.js';
import { Store } from '../../run/store.js';
import type { CliCommand } from '../command.js';
import { optionTable } from '../options.js';
import { action } from '../report.js';

interface ShowOptions { store?: string; json?: boolean }

export async function showCommand(file: string | undefined, runRef: string | undefined, o: ShowOptions): Promise<number> {
  const store = new Store(file ? storeDirFor(file, o.store) : o.store ?? '.lopper');
  if (runRef) {
    const r = await findRun(store, runRef, file);
    process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatRun(r)}\n`);
    return 0;
  }
  const runs = await listRuns(store, file);
  process.stdout.write(o.json
    ? `${JSON.stringify(runs.map((r) => ({ id: r.id, startedAt: r.startedAt, status: r.status, wallMs: r.wallMs, backend: r.backend.backend, metrics: r.metrics })))}\n`
    : `${formatRuns(runs)}\n`);
  return 0;
}

export const showCommandSpec: CliCommand = {
  name: 'show',
  register(program: Command) {
    program.command('show')
      .description('list recorded runs, or show one (id prefix, latest, latest~N)')
      .argument('[file]', 'recipe file: its runs, from its store; default every run in ./.lopper')
      .argument('[run]', 'run to show in full')
      .option('--store <dir>', 'store directory')
      .addOption(optionTable.json())
      .action(action(async (file: string | undefined, run: string | undefined, o: ShowOptions) => showCommand(file, run, o)));
  },
};
