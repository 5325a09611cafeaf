// lopper cache ls|gc [FILE]: the stage outputs in a recipe's store.
import type { Command } from 'commander';
import { LopperError } from '../../errors/lopper-error.js';
import { formatBytes, formatEntries } from '../../run/listing.js';
import { storeDirFor } from '../../run/planner.js';
import { Store } from '../../run/store.js';
import type { CliCommand } from '../command.js';
import { optionTable } from '../options.js';
import { action } from '../report.js';

interface CacheOptions { store?: string; json?: boolean; keepLast?: string }

function storeOf(file: string | undefined, o: CacheOptions): Store {
  return new Store(file ? storeDirFor(file, o.store) : o.store ?? '.lopper');
}

export async function cacheLsCommand(file: string | undefined, o: CacheOptions): Promise<number> {
  const entries = await storeOf(file, o).entries(true);
  if (o.json) process.stdout.write(`${JSON.stringify(entries.map((e) => ({ key: e.key, stage: e.meta.stageId, kind: e.meta.kind, createdAt: e.meta.createdAt, bytes: e.bytes, dir: e.dir })))}\n`);
  else process.stdout.write(`${formatEntries(entries)}\n`);
  return 0;
}

export async function cacheGcCommand(file: string | undefined, o: CacheOptions): Promise<number> {
  const keepLast = o.keepLast === undefined ? 1 : Number(o.keepLast);
  if (!Number.isInteger(keepLast) || keepLast < 0) throw new LopperError('LP7001', `--keep-last takes a whole number, not "${o.keepLast}"`);
  const removed = await storeOf(file, o).gc({ keepLast });
  for (const e of removed) process.stdout.write(`removed ${e.key.slice(0, 12)}  ${e.meta.stageId}\n`);
  process.stdout.write(`${removed.length} outputs removed, ${formatBytes(removed.reduce((n, e) => n + e.bytes, 0))} freed\n`);
  return 0;
}

export const cacheCommandSpec: CliCommand = {
  name: 'cache',
  register(program: Command) {
    const cache = program.command('cache').description('list or garbage-collect stored stage outputs');
    cache.command('ls')
      .description('stored outputs, newest first')
      .argument('[file]', 'recipe file (its store); default ./.lopper')
      .option('--store <dir>', 'store directory')
      .addOption(optionTable.json())
      .action(action(async (file: string | undefined, o: CacheOptions) => cacheLsCommand(file, o)));
    cache.command('gc')
      .description('remove all but the most recently used outputs of each stage, and temp dirs of dead runs')
      .argument('[file]', 'recipe file (its store); default ./.lopper')
      .option('--store <dir>', 'store directory')
      .option('--keep-last <n>', 'outputs kept per stage, most recently used first (default 1)')
      .action(action(async (file: string | undefined, o: CacheOptions) => cacheGcCommand(file, o)));
  },
};
