// lopper compare A B: changed parameters and metric deltas between two runs.
import type { Command } from 'commander';
import { compareRuns, formatComparison } from '../../run/compare.js';
import { storeDirFor } from '../../run/planner.js';
import { findRun } from '../../run/provenance.js';
import { compareReport } from '../../report/index.js';
import { Store } from '../../run/store.js';
import type { CliCommand } from '../command.js';
import { optionTable } from '../options.js';
import { action } from '../report.js';
import { openInBrowser } from './report.js';

interface CompareOptions { recipe?: string; store?: string; json?: boolean; all?: boolean; html?: string | boolean; open?: boolean }

export async function compareCommand(a: string, b: string, o: CompareOptions): Promise<number> {
  if (o.html) {
    const r = await compareReport(a, b, { recipe: o.recipe, store: o.store, out: typeof o.html === 'string' ? o.html : undefined });
    process.stdout.write(`${r.path}: ${r.data.run?.id} against ${r.b.run?.id}\n`);
    if (o.open) openInBrowser(r.path);
    return 0;
  }
  const store = new Store(o.recipe ? storeDirFor(o.recipe, o.store) : o.store ?? '.lopper');
  const c = compareRuns(await findRun(store, a, o.recipe), await findRun(store, b, o.recipe));
  process.stdout.write(o.json ? `${JSON.stringify(c, null, 2)}\n` : `${formatComparison(c, { all: o.all })}\n`);
  return 0;
}

export const compareCommandSpec: CliCommand = {
  name: 'compare',
  register(program: Command) {
    program.command('compare')
      .description('diff two runs: changed parameters and metric deltas (a run: id prefix, latest, latest~N, or a record file)')
      .argument('<a>', 'first run')
      .argument('<b>', 'second run')
      .option('-r, --recipe <file>', 'recipe whose runs to compare (latest, latest~N count among them)')
      .option('--store <dir>', 'store directory (default ./.lopper)')
      .option('--all', 'show unchanged metrics too')
      .option('--html [file]', 'write both runs side by side as one HTML page (default compare.html)')
      .option('--open', 'with --html: open the page in a browser')
      .addOption(optionTable.json())
      .action(action(async (a: string, b: string, o: CompareOptions) => compareCommand(a, b, o)));
  },
};
