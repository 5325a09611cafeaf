// `lopper report` and `lopper compare --html` as functions: find the run, read its stored outputs, write one HTML
// file. The CLI and watch mode call these; so can users (`import { report } from 'lopper'`).
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import { mergeForComparison } from '../eval/report.js';
import { storeDirFor } from '../run/planner.js';
import { findRun, listRuns } from '../run/provenance.js';
import { Store } from '../run/store.js';
import { collectReport, type ReportData } from './collect.js';
import { comparePage, reportPage, type PageOptions } from './page.js';
import { emptySource, sourceFromRun, type ReportSource } from './source.js';

export interface ReportOptions extends PageOptions {
  /** Recipe whose runs to report (its store, and `latest` among its runs). */
  recipe?: string;
  /** Run id prefix, latest, latest~N, or a run record file (default: latest). */
  run?: string;
  /** Store directory (default: the recipe's, else ./.lopper). */
  store?: string;
  /** Where to write the page (default ./report.html). */
  out?: string;
}

export interface ReportResult {
  /** The file written. */
  path: string;
  html: string;
  data: ReportData;
}

function openStore(opts: Pick<ReportOptions, 'recipe' | 'store'>): Store {
  const dir = resolve(opts.recipe ? storeDirFor(opts.recipe, opts.store) : opts.store ?? '.lopper');
  if (!existsSync(dir)) {
    throw new LopperError('LP7011', `no lopper store at ${dir}`, {
      location: { file: dir },
      hint: opts.recipe ? `lopper run ${opts.recipe} creates it` : 'name the recipe (lopper report FILE) or the store (--store DIR)',
    });
  }
  return new Store(dir);
}

/** The run to report: the one named, else the latest; an empty store yields a source that says so. */
async function runSource(store: Store, opts: Pick<ReportOptions, 'recipe' | 'run'>): Promise<ReportSource> {
  if (opts.run) return sourceFromRun(await findRun(store, opts.run, opts.recipe), store.dir);
  const runs = (await listRuns(store, opts.recipe)).filter((r) => r.status !== 'dry-run');
  const last = runs[runs.length - 1];
  if (last) return sourceFromRun(last, store.dir);
  return emptySource(opts.recipe ?? store.dir, store.dir, `no run recorded in ${store.runsDir()}${opts.recipe ? ` for ${opts.recipe}` : ''}: run lopper run FILE first`);
}

/** Writes through a temp file and a rename, so a browser reloading the page (watch) never reads half a file. */
export async function writeReportFile(path: string, html: string): Promise<string> {
  const target = resolve(path);
  await mkdir(dirname(target), { recursive: true });
  const tmp = `${target}.${process.pid}.tmp`;
  await writeFile(tmp, html);
  await rename(tmp, target);
  return target;
}

/** The HTML of one source (a run, a run in progress, an evaluate stage's upstream). */
export async function renderReport(source: ReportSource, opts: PageOptions = {}): Promise<{ html: string; data: ReportData }> {
  const data = await collectReport(source);
  return { html: await reportPage(data, opts), data };
}

export async function report(opts: ReportOptions = {}): Promise<ReportResult> {
  const store = openStore(opts);
  const { html, data } = await renderReport(await runSource(store, opts), opts);
  return { path: await writeReportFile(opts.out ?? 'report.html', html), html, data };
}

export interface CompareReportOptions extends Omit<ReportOptions, 'run'> { /** Default ./compare.html. */ out?: string }

/** Two runs side by side; both runs' first evaluate stages in one table, relative to A's baseline. */
export async function compareReport(a: string, b: string, opts: CompareReportOptions = {}): Promise<ReportResult & { b: ReportData }> {
  const store = openStore(opts);
  const [da, db] = await Promise.all([a, b].map(async (ref) => collectReport(sourceFromRun(await findRun(store, ref, opts.recipe), store.dir))));
  const ma = da!.results[0]?.metrics;
  const mb = db!.results[0]?.metrics;
  const html = await comparePage(da!, db!, ma && mb ? mergeForComparison(ma, mb) : undefined, opts);
  return { path: await writeReportFile(opts.out ?? 'compare.html', html), html, data: da!, b: db! };
}

export { collectReport, type ReportData } from './collect.js';
export { sourceFromOutcomes, sourceFromRun, type ReportSource, type ReportStage } from './source.js';
