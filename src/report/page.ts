// The report as one self-contained HTML page: tables as HTML, charts compiled from Vega-Lite to Vega here and drawn
// in the page by Vega's SVG renderer, whose browser bundle is inlined — so the file opens from file:// with no network.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { comparison, formatValue, signedChange, type MetricsFile } from '../eval/report.js';
import {
  distributionChart, frontierCharts, importanceChart, lossChart, widthCharts, type Chart,
} from './charts.js';
import type { ReportData } from './collect.js';

export interface PageOptions {
  /** Reload the page every few seconds (watch mode keeps the file current). */
  live?: boolean;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON inside <script>: `<` escaped so no string in the data can close the element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

let vegaBundle: Promise<string> | undefined;

/** vega.min.js from the installed package (its `exports` hide build/, so it is found next to the module entry). */
function vegaScript(): Promise<string> {
  vegaBundle ??= readFile(fileURLToPath(new URL('vega.min.js', import.meta.resolve('vega'))), 'utf8');
  return vegaBundle;
}

/** The comparison table as the CLI prints it (values, then the change against the baseline), numbers in data-value. */
export function resultsTable(metrics: MetricsFile, id: string): string {
  const cmp = comparison(metrics);
  const head = `<tr><th>model</th>${cmp.columns.map((c) => `<th data-key="${escapeHtml(c.key)}">${escapeHtml(c.label)}</th>`).join('')}</tr>`;
  const rows = cmp.rows.map((row) => `<tr data-model="${escapeHtml(row.model)}"><th>${escapeHtml(row.model)}</th>${cmp.columns.map((c) => {
    const v = row.values[c.key] ?? null;
    const ratio = row.ratio?.[c.key];
    const change = ratio == null ? '' : ` <span class="change">(${signedChange(ratio)})</span>`;
    return `<td data-key="${escapeHtml(c.key)}"${v === null ? '' : ` data-value="${v}"`}>${escapeHtml(formatValue(c.kind, v))}${change}</td>`;
  }).join('')}</tr>`).join('\n');
  const summary = cmp.summary.length ? `<ul class="summary">${cmp.summary.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}</ul>` : '';
  return `<table class="results" id="${escapeHtml(id)}">\n<thead>${head}</thead>\n<tbody>\n${rows}\n</tbody>\n</table>\n${summary}`;
}

function chartBox(c: Chart): string {
  return `<figure class="chart" data-points="${c.points}"><figcaption>${escapeHtml(c.title)}</figcaption><div class="view" id="${escapeHtml(c.id)}"></div></figure>`;
}

function section(panel: string, title: string, body: string[], empty: string): string {
  const content = body.length ? body.join('\n') : `<p class="empty">${escapeHtml(empty)}</p>`;
  return `<section class="panel" data-panel="${panel}">\n<h2>${escapeHtml(title)}</h2>\n${content}\n</section>`;
}

export interface Panels { sections: string[]; charts: Chart[] }

/** Every panel of one run, in reading order; `prefix` keeps chart ids unique when two runs share a page. */
export function runPanels(data: ReportData, prefix = ''): Panels {
  const charts: Chart[] = [];
  const add = (c: Chart | undefined): string[] => {
    if (!c) return [];
    const chart = { ...c, id: `${prefix}${c.id}` };
    charts.push(chart);
    return [chartBox(chart)];
  };
  const results = data.results.map((r) => `<h3>${escapeHtml(r.stage)}</h3>\n${resultsTable(r.metrics, `${prefix}results-${r.stage.replace(/[^A-Za-z0-9]+/g, '-')}`)}`);
  const frontier = frontierCharts(data.results).flatMap(add);
  const importance = data.importance.flatMap((i) => add(importanceChart(i)));
  const distribution = data.importance.flatMap((i) => add(distributionChart(i, data.plans.find((p) => p.importanceStage === i.stage))));
  const widths = data.plans.flatMap((p) => widthCharts(p, data.importance.find((i) => i.stage === p.importanceStage)).flatMap(add));
  const training = data.training.flatMap((t) => add(lossChart(t)));
  const sections = [
    section('results', 'Results', results, 'No evaluate stage output: no results yet.'),
    section('frontier', 'Parameters against perplexity and accuracy', frontier, 'Fewer than two evaluated models: no frontier.'),
    section('importance', 'Group importance per layer', importance, 'No per-layer importance: no aggregate stage output, or channel-wise groups only.'),
    section('distribution', 'Unit scores in one layer', distribution, 'No unit scores: no aggregate stage output, or layer-wise groups only.'),
    section('widths', 'Kept widths per layer', widths, 'No prune stage output: no kept widths.'),
    section('training', 'Training and validation loss', training, 'No train or lora-finetune stage output: no loss curves.'),
  ];
  return { sections, charts };
}

function runHeader(data: ReportData): string {
  const r = data.run;
  const facts = r ? [`run ${r.id}`, r.status, r.startedAt, r.backend ? `backend ${r.backend}` : undefined, r.wallMs === undefined ? undefined : `${(r.wallMs / 1000).toFixed(1)} s`]
    .filter((x): x is string => Boolean(x)) : [];
  const missing = data.missing.length
    ? `<div class="missing" data-panel="missing"><h2>Missing</h2><ul>${data.missing.map((m) => `<li>${escapeHtml(m)}</li>`).join('')}</ul></div>` : '';
  if (data.storeDir) facts.push(`store ${data.storeDir}`);
  return `${facts.length ? `<p class="facts">${facts.map(escapeHtml).join(' · ')}</p>` : ''}\n${missing}`;
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; } h3 { font-size: 14px; margin: 14px 0 6px; }
.facts { color: #666; margin: 0; } .missing { background: #fff4e5; border: 1px solid #f0c36d; padding: 4px 14px; margin-top: 12px; } .missing h2 { border: 0; margin: 8px 0 0; }
table.results { border-collapse: collapse; font-variant-numeric: tabular-nums; } table.results th, table.results td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
table.results th:first-child { text-align: left; } .change { color: #777; } .summary { color: #444; } .empty { color: #888; font-style: italic; }
.charts, section.panel { display: block; } figure.chart { display: inline-block; vertical-align: top; margin: 0 18px 18px 0; } figcaption { font-weight: 600; margin-bottom: 4px; max-width: 560px; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; } .columns > div { min-width: 0; overflow-x: auto; }
`;

async function page(title: string, body: string, charts: Chart[], opts: PageOptions): Promise<string> {
  // Imported here, not at the top: every CLI command loads watch and compare, and vega-lite costs ~150 ms to load.
  const { compile } = await import('vega-lite');
  const specs = charts.map((c) => ({ id: c.id, spec: compile(c.spec).spec }));
  const live = opts.live ? `
const key = 'lopper-report-scroll:' + location.pathname;
const y = Number(sessionStorage.getItem(key) || 0);
if (y) requestAnimationFrame(() => scrollTo(0, y));
setTimeout(() => { sessionStorage.setItem(key, String(scrollY)); location.reload(); }, 2000);` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="lopper">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${body}
<script>${await vegaScript()}</script>
<script type="application/json" id="lopper-charts">${scriptJson(specs)}</script>
<script>
const charts = JSON.parse(document.getElementById('lopper-charts').textContent);
Promise.all(charts.map((c) => new vega.View(vega.parse(c.spec), { renderer: 'svg', container: document.getElementById(c.id), hover: true }).runAsync()))
  .then(() => { document.body.dataset.rendered = String(charts.length); }, (e) => { console.error(e); document.body.dataset.rendered = 'error'; });
${live}
</script>
</body>
</html>
`;
}

/** The report of one run. */
export async function reportPage(data: ReportData, opts: PageOptions = {}): Promise<string> {
  const { sections, charts } = runPanels(data);
  const body = `<h1>lopper report: ${escapeHtml(data.title)}</h1>\n${runHeader(data)}\n${sections.join('\n')}`;
  return page(`${data.title} — lopper report`, body, charts, opts);
}

/** Two runs side by side: both runs' models in one table (relative to A's baseline), then each panel of A beside B's. */
export async function comparePage(a: ReportData, b: ReportData, merged: MetricsFile | undefined, opts: PageOptions = {}): Promise<string> {
  const pa = runPanels(a, 'a-');
  const pb = runPanels(b, 'b-');
  const label = (d: ReportData) => `${d.title}${d.run ? ` (run ${d.run.id})` : ''}`;
  const table = merged
    ? section('comparison', 'A against B', [resultsTable(merged, 'comparison')], '')
    : section('comparison', 'A against B', [], 'One of the runs has no evaluate stage output: nothing to put side by side.');
  const columns = pa.sections.map((s, i) => `<div class="columns"><div>${s}</div><div>${pb.sections[i]}</div></div>`);
  const body = `<h1>lopper compare</h1>\n<div class="columns"><div><h2>A: ${escapeHtml(label(a))}</h2>${runHeader(a)}</div><div><h2>B: ${escapeHtml(label(b))}</h2>${runHeader(b)}</div></div>\n${table}\n${columns.join('\n')}`;
  return page(`${a.title} vs ${b.title} — lopper compare`, body, [...pa.charts, ...pb.charts], opts);
}
