// The HTML report in a real browser (Debian's chromium through playwright-core, never a downloaded one): the
// quickstart (with fewer steps, so the store builds in seconds) and the stories260K ratio × importance sweep. Checks:
// no console error and no request off file://, every panel present, each chart's SVG draws one mark per data point
// of the stored files, the table's numbers equal metrics.json; an empty store and a damaged one; compare --html.
// Screenshots go to test-output/report/.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { run } from '../../src/run/run.js';

const CHROMIUM = '/usr/bin/chromium';
const SHARED = resolve('../shared');
const main = 'dist/cli/main.js';
const OUT = resolve('test-output/report');
const noBrowser = !existsSync(CHROMIUM) && `${CHROMIUM} missing: bash scripts/ensure-chromium.sh installs it`;
const noShared = !existsSync(join(SHARED, 'models/stories260K-hf')) && `${SHARED}/models/stories260K-hf missing`;
const noCli = !existsSync(main) && `${main} missing: run npx tsc -p . first`;

const work = mkdtempSync(join(tmpdir(), 'lopper-report-'));
after(() => rmSync(work, { recursive: true, force: true }));

function lopper(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [resolve(main), ...args], { encoding: 'utf8', cwd: work });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function outputsOf(recipe: string, kind: string): { id: string; dir: string }[] {
  const runs = join(work, recipe, '.lopper', 'runs');
  const record = JSON.parse(readFileSync(join(runs, readdirSync(runs).sort().at(-1)!), 'utf8')) as { stages: Record<string, { kind: string; output: string }> };
  return Object.entries(record.stages).filter(([, s]) => s.kind === kind).map(([id, s]) => ({ id, dir: s.output }));
}
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').length;

// The quickstart as shipped on an 80 KB slice of its training text, with fewer and smaller training steps, evaluation
// windows and timing passes: seconds instead of minutes (`small` shares base's train settings through a YAML alias).
const QUICK = ['datasets.brown.path=data/brown-small.txt', 'vars.steps=3', 'stages.base.train.eval_every=1', 'stages.base.train.val_size=8',
  'stages.base.train.batch_size=4', 'stages.base.train.micro_batch_size=4', 'stages.tuned.train.max_steps=2', 'stages.tuned.train.eval_every=1',
  'stages.tuned.train.val_size=8', 'stages.report.perplexity.limit=8', 'stages.report.speed.iterations=1'];

async function quickstartStore(): Promise<string> {
  const dir = join(work, 'quickstart');
  mkdirSync(dir);
  cpSync('examples/quickstart.yaml', join(dir, 'quickstart.yaml'));
  cpSync('examples/data', join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, 'data', 'brown-small.txt'), readFileSync(join(dir, 'data', 'brown-train.txt'), 'utf8').slice(0, 80_000));
  const r = await run(join(dir, 'quickstart.yaml'), { set: QUICK });
  assert.equal(r.status, 'ok', String(r.failed?.error));
  return join(dir, 'quickstart.yaml');
}

async function sweepStore(): Promise<string> {
  const dir = join(work, 'sweep');
  mkdirSync(dir);
  const text = readFileSync('examples/stories260k-sweep.yaml', 'utf8').replaceAll('../../shared', SHARED);
  writeFileSync(join(dir, 'sweep.yaml'), text);
  // A 30 KB slice of the TinyStories file: every evaluate instance tokenizes its perplexity text anew.
  writeFileSync(join(dir, 'stories.txt'), readFileSync(join(SHARED, 'data/tinystories/tinystories_val_first.txt'), 'utf8').slice(0, 30_000));
  const r = await run(join(dir, 'sweep.yaml'), {
    set: ['datasets.stories.path=stories.txt', 'stages.tuned.train.max_steps=1', 'stages.tuned.train.batch_size=4', 'stages.report.perplexity.limit=2',
      'stages.report.speed.iterations=1', 'stages.scores.calibration.samples=2'],
  });
  assert.equal(r.status, 'ok', String(r.failed?.error));
  return join(dir, 'sweep.yaml');
}

let browser: Browser | undefined;
let quickstart = '';
let sweep = '';
before(async () => {
  if (noBrowser || noShared || noCli) return;
  mkdirSync(OUT, { recursive: true });
  let t = performance.now();
  quickstart = await quickstartStore();
  const quickMs = performance.now() - t;
  t = performance.now();
  sweep = await sweepStore();
  process.stdout.write(`# report fixtures: quickstart store ${(quickMs / 1000).toFixed(1)} s, sweep store ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});
after(async () => { await browser?.close(); });

interface Rendered {
  errors: string[];
  requests: string[];
  panels: string[];
  emptyPanels: string[];
  charts: { id: string; title: string; marks: number }[];
  cells: { table: string; model: string; key: string; value: string | null; text: string }[];
}

/** Opens a page from file:// with every request off file:// refused and recorded; returns what the checks read. */
async function render(file: string, screenshot: string): Promise<Rendered> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`console.${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file:')) return route.continue();
    requests.push(url);
    return route.abort();
  });
  await page.goto(pathToFileURL(file).href);
  await page.waitForSelector('body[data-rendered]', { timeout: 20_000 });
  const state = await page.evaluate(() => ({
    rendered: document.body.dataset.rendered!,
    panels: [...document.querySelectorAll<HTMLElement>('section.panel')].map((s) => s.dataset.panel!),
    emptyPanels: [...document.querySelectorAll<HTMLElement>('section.panel')].filter((s) => s.querySelector('.empty')).map((s) => s.dataset.panel!),
    charts: [...document.querySelectorAll<HTMLElement>('figure.chart')].map((f) => ({
      id: f.querySelector<HTMLElement>('.view')!.id,
      title: f.querySelector('figcaption')!.textContent!,
      // Vega's SVG renderer: one <path> per item in a mark group; legends' symbols carry role-legend-symbol instead.
      marks: f.querySelectorAll('svg g.mark-symbol.role-mark > path, svg g.mark-rect.role-mark > path').length,
    })),
    cells: [...document.querySelectorAll<HTMLElement>('table.results tbody td')].map((td) => ({
      table: td.closest('table')!.id, model: td.closest('tr')!.dataset.model!, key: td.dataset.key!, value: td.dataset.value ?? null, text: td.textContent!,
    })),
  }));
  assert.notEqual(state.rendered, 'error', errors.join('\n'));
  await page.screenshot({ path: join(OUT, screenshot), fullPage: true });
  await page.close();
  return { errors, requests, ...state };
}

/** `lopper report ARGS --out NAME.html` as a user runs it, rendered; the page must load cleanly and offline. */
async function reportPageOf(name: string, ...args: string[]): Promise<Rendered> {
  const cli = lopper('report', ...args, '--out', join(work, `${name}.html`));
  assert.equal(cli.code, 0, cli.stderr);
  const r = await render(join(work, `${name}.html`), `${name}.png`);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.requests, []);
  return r;
}

function marksOf(r: Rendered, idPrefix: string): { id: string; title: string; marks: number }[] {
  return r.charts.filter((c) => c.id.startsWith(idPrefix));
}

/** Every number of every results table equals metrics.json; shown as the CLI formats it. */
function checkTables(r: Rendered, evaluates: { id: string; dir: string }[]): void {
  assert.ok(r.cells.length > 0);
  for (const e of evaluates) {
    const metrics = readJson(join(e.dir, 'metrics.json')) as { models: Record<string, { params: number; perplexity: Record<string, number> }> };
    const table = `results-${e.id.replace(/[^A-Za-z0-9]+/g, '-')}`;
    for (const [model, m] of Object.entries(metrics.models)) {
      const cell = (key: string) => r.cells.find((c) => c.table === table && c.model === model && c.key === key);
      assert.equal(Number(cell('params')?.value), m.params, `${table} ${model} params`);
      for (const [d, ppl] of Object.entries(m.perplexity)) {
        const c = cell(`perplexity.${d}`)!;
        assert.equal(Number(c.value), ppl, `${table} ${model} ${d}`);
        assert.ok(c.text.startsWith(ppl.toFixed(2)), `${c.text} shows ${ppl}`);
      }
    }
    assert.equal(new Set(r.cells.filter((c) => c.table === table).map((c) => c.model)).size, Object.keys(metrics.models).length);
  }
}

const skip = noBrowser || noShared || noCli;
const PANELS = ['results', 'frontier', 'importance', 'distribution', 'widths', 'training'];

test('the quickstart report: every panel, one mark per stored point, the table equal to metrics.json', { skip }, async () => {
  const r = await reportPageOf('quickstart', quickstart);
  assert.deepEqual(r.panels, PANELS);
  assert.deepEqual(r.emptyPanels, []);
  checkTables(r, outputsOf('quickstart', 'evaluate'));

  const imp = readJson(join(outputsOf('quickstart', 'aggregate')[0]!.dir, 'importance.json')) as { layers: Record<string, Record<string, number[]>> };
  const [importance] = marksOf(r, 'importance-');
  assert.equal(importance!.marks, Object.values(imp.layers).reduce((n, l) => n + Object.keys(l).length, 0));
  const [dist] = marksOf(r, 'distribution-');
  const layer = /layer (\d+) MLP channels/.exec(dist!.title)![1]!;
  assert.equal(dist!.marks, imp.layers[layer]!.mlp!.length);
  const plan = readJson(join(outputsOf('quickstart', 'prune')[0]!.dir, 'plan.json')) as { layers: Record<string, unknown> };
  for (const c of [...marksOf(r, 'heads-'), ...marksOf(r, 'channels-')]) assert.equal(c.marks, 2 * Object.keys(plan.layers).length, c.title);
  const trained = [...outputsOf('quickstart', 'train'), ...outputsOf('quickstart', 'lora-finetune')];
  assert.equal(marksOf(r, 'loss-').length, trained.length);
  for (const t of trained) assert.equal(marksOf(r, `loss-${t.id}`)[0]!.marks, lines(join(t.dir, 'train.jsonl')), t.id);
  const metrics = readJson(join(outputsOf('quickstart', 'evaluate')[0]!.dir, 'metrics.json')) as { models: object };
  assert.equal(marksOf(r, 'frontier-')[0]!.marks, Object.keys(metrics.models).length);
});

test('the sweep report: one frontier point per evaluated model instance, a table per evaluate instance', { skip }, async () => {
  const r = await reportPageOf('sweep', sweep);
  assert.deepEqual(r.emptyPanels, []);
  const evaluates = outputsOf('sweep', 'evaluate');
  assert.equal(evaluates.length, 4);
  checkTables(r, evaluates);
  const models = new Set(evaluates.flatMap((e) => Object.keys((readJson(join(e.dir, 'metrics.json')) as { models: object }).models)));
  assert.equal(models.size, 9, [...models].join(', ')); // base + 4 pruned + 4 tuned
  assert.equal(marksOf(r, 'frontier-')[0]!.marks, models.size);
  assert.equal(marksOf(r, 'importance-').length, 2);
  assert.equal(marksOf(r, 'heads-').length, 4);
  assert.equal(marksOf(r, 'loss-').length, 4);
});

test('each evaluate output holds its own report.html, which renders cleanly from file://', { skip }, async () => {
  for (const [recipe, evaluate] of [['quickstart', outputsOf('quickstart', 'evaluate')[0]!], ['sweep', outputsOf('sweep', 'evaluate')[0]!]] as const) {
    const r = await render(join(evaluate.dir, 'report.html'), `${recipe}-stage.png`);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.requests, []);
    checkTables(r, [evaluate]);
    // The upstream stages' outputs are in the page: importance, kept widths, loss curves.
    assert.ok(marksOf(r, 'importance-').length >= 1 && marksOf(r, 'heads-').length >= 1 && marksOf(r, 'loss-').length >= 1, JSON.stringify(r.charts.map((c) => c.id)));
  }
});

test('compare --html puts two runs side by side', { skip }, async () => {
  const again = await run(quickstart, { set: [...QUICK, 'vars.ratio=0.25'] });
  assert.equal(again.status, 'ok');
  const cli = lopper('compare', 'latest~1', 'latest', '--recipe', quickstart, '--html', join(work, 'compare.html'));
  assert.equal(cli.code, 0, cli.stderr);
  const r = await render(join(work, 'compare.html'), 'compare.png');
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.panels, ['comparison', ...PANELS.flatMap((p) => [p, p])]);
  assert.equal(marksOf(r, 'a-heads-').length, 1);
  assert.equal(marksOf(r, 'b-heads-').length, 1);
  const models = new Set(r.cells.filter((c) => c.table === 'comparison').map((c) => c.model));
  assert.deepEqual([...models], ['A:base', 'A:pruned', 'A:tuned', 'A:small', 'B:base', 'B:pruned', 'B:tuned', 'B:small']);
});

test('an empty store gives a page that says so; a missing store, an unknown run and a damaged metrics.json are errors naming the file', { skip }, async () => {
  const empty = join(work, 'empty');
  mkdirSync(join(empty, '.lopper'), { recursive: true });
  const ok = lopper('report', '--store', join(empty, '.lopper'), '--out', join(empty, 'report.html'));
  assert.equal(ok.code, 0, ok.stderr);
  const r = await render(join(empty, 'report.html'), 'empty.png');
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.emptyPanels, PANELS);
  assert.match(readFileSync(join(empty, 'report.html'), 'utf8'), /no run recorded in [^<]*runs: run lopper run FILE first/);

  const missing = lopper('report', '--store', join(work, 'nowhere'));
  assert.equal(missing.code, 1, missing.stdout + missing.stderr);
  assert.match(missing.stderr, /error\[LP7011\]: no lopper store at .*nowhere/);
  const unknown = lopper('report', quickstart, 'nosuchrun');
  assert.equal(unknown.code, 1, unknown.stdout + unknown.stderr);
  assert.match(unknown.stderr, /error\[LP7004\]: no run "nosuchrun"/);

  const damaged = join(work, 'damaged');
  cpSync(join(work, 'quickstart'), damaged, { recursive: true });
  const runs = join(damaged, '.lopper', 'runs');
  const recordPath = join(runs, readdirSync(runs).sort().at(-1)!);
  const record = readFileSync(recordPath, 'utf8').replaceAll(join(work, 'quickstart'), damaged);
  writeFileSync(recordPath, record);
  const metricsPath = join((JSON.parse(record) as { stages: { report: { output: string } } }).stages.report.output, 'metrics.json');
  writeFileSync(metricsPath, '{"models": ');
  const bad = lopper('report', '--store', join(damaged, '.lopper'), 'latest', '--out', join(damaged, 'r.html'));
  assert.equal(bad.code, 1, bad.stdout + bad.stderr);
  assert.ok(bad.stderr.includes(`${metricsPath} error[LP7011]: ${metricsPath}: is not valid JSON`), bad.stderr);

  // A half-run store: a stage whose output was removed is named in the page instead of failing it.
  rmSync(metricsPath);
  const half = lopper('report', '--store', join(damaged, '.lopper'), 'latest', '--out', join(damaged, 'half.html'));
  assert.equal(half.code, 0, half.stderr);
  const h = await render(join(damaged, 'half.html'), 'half-run.png');
  assert.deepEqual(h.errors, []);
  assert.ok(h.emptyPanels.includes('results'));
  assert.match(readFileSync(join(damaged, 'half.html'), 'utf8'), /report \(evaluate\): [^<]*metrics\.json is not in the store/);
});
