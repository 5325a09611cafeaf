// lopper report [FILE] [RUN]: one self-contained HTML page of a run's stored outputs (tables and charts).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { report } from '../../report/index.js';
import type { CliCommand } from '../command.js';
import { action } from '../report.js';

interface ReportOptions { store?: string; out?: string; open?: boolean }

/** Opens a file in the desktop's browser; a machine without one gets a line saying where the file is. */
export function openInBrowser(path: string): void {
  const [cmd, ...args] = process.platform === 'darwin' ? ['open', path] : process.platform === 'win32' ? ['cmd', '/c', 'start', '', path] : ['xdg-open', path];
  const child = spawn(cmd!, args, { detached: true, stdio: 'ignore' });
  child.on('error', () => process.stderr.write(`lopper: could not open a browser (${cmd} failed); open ${path} yourself\n`));
  child.unref();
}

export async function reportCommand(file: string | undefined, run: string | undefined, o: ReportOptions): Promise<number> {
  // `lopper report latest` / `lopper report --store DIR 2026…`: a lone argument that is no file names the run.
  if (file !== undefined && run === undefined && !existsSync(file)) [file, run] = [undefined, file];
  const r = await report({ recipe: file, run, store: o.store, out: o.out });
  const charts = (r.html.match(/<figure class="chart"/g) ?? []).length;
  process.stdout.write(`${r.path}: ${r.data.title}${r.data.run ? `, run ${r.data.run.id}` : ''} — ${charts} charts${r.data.missing.length ? `, ${r.data.missing.length} missing (listed in the page)` : ''}\n`);
  if (o.open) openInBrowser(r.path);
  return 0;
}

export const reportCommandSpec: CliCommand = {
  name: 'report',
  register(program: Command) {
    program.command('report')
      .description('write one self-contained HTML page (tables and charts, no network) of a run\'s stored outputs')
      .argument('[file]', 'recipe file: its latest run, from its store; default the latest run in ./.lopper (a lone argument that is not a file names the run)')
      .argument('[run]', 'run to report (id prefix, latest, latest~N, or a record file)')
      .option('--store <dir>', 'store directory')
      .option('-o, --out <file>', 'where to write the page', 'report.html')
      .option('--open', 'open the page in a browser')
      .action(action(async (file: string | undefined, run: string | undefined, o: ReportOptions) => reportCommand(file, run, o)));
  },
};
