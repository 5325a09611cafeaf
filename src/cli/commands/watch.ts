// lopper watch FILE: rerun invalidated stages whenever the recipe or a file it reads changes.
import type { Command } from 'commander';
import { readRecipeFile } from '../../dsl/resolve.js';
import { join } from 'node:path';
import { storeDirFor } from '../../run/planner.js';
import { watch } from '../../run/watch.js';
import type { CliCommand } from '../command.js';
import { withOptions, type CommonOptions } from '../options.js';
import { action } from '../report.js';

interface WatchOptions extends CommonOptions { store?: string; debounce?: string }

export async function watchCommand(file: string, o: WatchOptions): Promise<number> {
  // A recipe that cannot be read at all is a mistyped path, not an edit in progress: fail (LP1014) instead of waiting.
  await readRecipeFile(file);
  const h = watch(file, { set: o.set, backend: o.backend, store: o.store, debounceMs: o.debounce ? Number(o.debounce) : undefined });
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) process.exit(130);
    void h.close();
  };
  process.on('SIGINT', onSigint);
  await h.ready;
  process.stdout.write(`lopper watch: watching ${file} and the files it reads (r rerun, f force current stage, q quit); report at ${join(storeDirFor(file, o.store), 'report.html')}\n`);
  await h.closed;
  process.off('SIGINT', onSigint);
  return 0;
}

export const watchCommandSpec: CliCommand = {
  name: 'watch',
  register(program: Command) {
    withOptions(program.command('watch'))
      .description('watch the recipe and the files it reads; replan and rerun only invalidated stages on change')
      .argument('<file>', 'recipe file')
      .option('--store <dir>', 'store directory')
      .option('--debounce <ms>', 'quiet period before replanning (default 30)')
      .action(action(async (file: string, o: WatchOptions) => watchCommand(file, o)));
  },
};
