// metrics.json (DESIGN.md: {"models": {"<name>": {"params", "perplexity", "zero_shot", "tokens_per_second"}}}) and the
// comparison table printed after an evaluate stage or by `lopper compare`: one row per model, one column per metric,
// and every row after the first compared with the first (the dense baseline), the way LLM-Pruner's tables read
// ("pruned keeps 89.8% of dense average accuracy").
import { LopperError } from '../errors/lopper-error.js';
import { builtinTemplates, type ZeroShotMetric } from './templates.js';

export interface TaskMetrics {
  acc: number;
  /** Absent where the task defines acc only (WinoGrande partial scoring). */
  acc_norm?: number;
}

export interface ModelMetrics {
  params: number;
  /** Forward MACs of one [1, macs_seq_len] input. */
  macs?: number;
  perplexity: Record<string, number>;
  zero_shot: Record<string, TaskMetrics>;
  tokens_per_second: number;
  /** Counts behind the numbers (windows, tokens, questions); not compared. */
  details?: Record<string, unknown>;
}

export interface TaskInfo {
  template: string;
  /** The metric the table reports for the task. */
  metric: ZeroShotMetric;
  questions: number;
}

export interface MetricsFile {
  /** In evaluation order; the first is the baseline of relative columns. */
  models: Record<string, ModelMetrics>;
  baseline?: string;
  tasks?: Record<string, TaskInfo>;
  settings?: Record<string, unknown>;
}

export type ColumnKind = 'params' | 'macs' | 'perplexity' | 'accuracy' | 'average' | 'speed';

export interface Column {
  key: string;
  label: string;
  kind: ColumnKind;
  /** Whether a larger value is better (accuracy, speed) or worse (perplexity); params/MACs count as "smaller". */
  higherIsBetter: boolean;
}

export interface ComparisonRow {
  model: string;
  values: Record<string, number | null>;
  /** value ÷ baseline value, per column (null where either is missing); absent for the baseline row. */
  ratio?: Record<string, number | null>;
}

export interface Comparison {
  baseline: string;
  columns: Column[];
  rows: ComparisonRow[];
  /** One sentence per non-baseline model. */
  summary: string[];
}

/** Checks the parts of a parsed metrics.json that the report reads. `source` names the file in errors. */
export function parseMetrics(value: unknown, source: string): MetricsFile {
  const models = (value as { models?: unknown } | null)?.models;
  if (typeof models !== 'object' || models === null || Array.isArray(models) || Object.keys(models).length === 0) {
    throw new LopperError('LP5013', `${source} has no "models" object`, { location: { file: source } });
  }
  for (const [name, m] of Object.entries(models as Record<string, unknown>)) {
    const model = m as Partial<ModelMetrics> | null;
    if (typeof model?.params !== 'number' || typeof model.perplexity !== 'object' || typeof model.zero_shot !== 'object') {
      throw new LopperError('LP5013', `${source}: model "${name}" lacks params, perplexity or zero_shot`, { location: { file: source } });
    }
  }
  return value as MetricsFile;
}

function taskMetric(metrics: MetricsFile, task: string, entry: TaskMetrics): ZeroShotMetric {
  const declared = metrics.tasks?.[task]?.metric;
  if (declared) return declared;
  const builtin = builtinTemplates.get(task)?.reported;
  if (builtin && (builtin === 'acc' || entry.acc_norm !== undefined)) return builtin;
  return 'acc';
}

function union(lists: string[][]): string[] {
  const seen = new Set<string>();
  for (const list of lists) for (const item of list) seen.add(item);
  return [...seen];
}

/** Rows, columns and relative values of a metrics file; the first model is the baseline. */
export function comparison(metrics: MetricsFile): Comparison {
  const names = Object.keys(metrics.models);
  const baseline = metrics.baseline && names.includes(metrics.baseline) ? metrics.baseline : names[0]!;
  const ordered = [baseline, ...names.filter((n) => n !== baseline)];
  const models = ordered.map((n) => metrics.models[n]!);
  const datasets = union(models.map((m) => Object.keys(m.perplexity)));
  const tasks = union(models.map((m) => Object.keys(m.zero_shot)));
  const metricOf = new Map(
    tasks.map((t) => [t, taskMetric(metrics, t, models.find((m) => m.zero_shot[t])!.zero_shot[t]!)]),
  );

  const columns: Column[] = [{ key: 'params', label: 'params', kind: 'params', higherIsBetter: false }];
  if (models.some((m) => typeof m.macs === 'number')) {
    const seqLen = (metrics.settings as { macs_seq_len?: number } | undefined)?.macs_seq_len;
    columns.push({ key: 'macs', label: seqLen ? `MACs@${seqLen}` : 'MACs', kind: 'macs', higherIsBetter: false });
  }
  for (const d of datasets) columns.push({ key: `perplexity.${d}`, label: `${d} ppl`, kind: 'perplexity', higherIsBetter: false });
  for (const t of tasks) {
    columns.push({ key: `zero_shot.${t}`, label: `${t} ${metricOf.get(t)}`, kind: 'accuracy', higherIsBetter: true });
  }
  if (tasks.length > 0) columns.push({ key: 'average', label: 'average', kind: 'average', higherIsBetter: true });
  columns.push({ key: 'tokens_per_second', label: 'tokens/s', kind: 'speed', higherIsBetter: true });

  const valuesOf = (m: ModelMetrics): Record<string, number | null> => {
    const values: Record<string, number | null> = { params: m.params };
    if (columns.some((c) => c.key === 'macs')) values.macs = m.macs ?? null;
    for (const d of datasets) values[`perplexity.${d}`] = m.perplexity[d] ?? null;
    const accs: number[] = [];
    for (const t of tasks) {
      const entry = m.zero_shot[t];
      const v = entry ? (entry[metricOf.get(t)!] ?? null) : null;
      values[`zero_shot.${t}`] = v;
      if (v !== null) accs.push(v);
    }
    // LLM-Pruner's "Average": the unweighted mean of the reported per-task metric, over tasks this model has all of.
    if (tasks.length > 0) values.average = accs.length === tasks.length ? accs.reduce((a, b) => a + b, 0) / accs.length : null;
    values.tokens_per_second = m.tokens_per_second ?? null;
    return values;
  };

  const baseValues = valuesOf(models[0]!);
  const rows: ComparisonRow[] = ordered.map((model, i) => {
    const values = valuesOf(models[i]!);
    if (i === 0) return { model, values };
    const ratio: Record<string, number | null> = {};
    for (const c of columns) {
      const v = values[c.key];
      const b = baseValues[c.key];
      ratio[c.key] = v === null || v === undefined || b === null || b === undefined || b === 0 ? null : v / b;
    }
    return { model, values, ratio };
  });

  const summary = rows.slice(1).map((row) => summarize(row, baseline, columns));
  return { baseline, columns, rows, summary };
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}

function summarize(row: ComparisonRow, baseline: string, columns: Column[]): string {
  const parts: string[] = [];
  const r = row.ratio!;
  if (r.average != null) parts.push(`keeps ${percent(r.average)} of ${baseline} average accuracy`);
  if (r.params != null) parts.push(`${percent(r.params)} of its parameters`);
  if (r.macs != null) parts.push(`${percent(r.macs)} of its MACs`);
  for (const c of columns.filter((c) => c.kind === 'perplexity')) {
    if (r[c.key] != null) parts.push(`${c.label} ${signedChange(r[c.key]!)}`);
  }
  if (r.tokens_per_second != null) parts.push(`${r.tokens_per_second.toFixed(2)}× the tokens/s`);
  return `${row.model} ${parts.length > 0 ? parts.join(', ') : 'has no metric in common with ' + baseline}`;
}

export function signedChange(ratio: number): string {
  const change = (ratio - 1) * 100;
  return `${change >= 0 ? '+' : '−'}${Math.abs(change).toFixed(1)}%`;
}

/** 6.74B, 260.1K, 424.02G: counts with a unit suffix. */
export function formatCount(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'K']];
  for (const [scale, suffix] of units) if (Math.abs(n) >= scale) return `${(n / scale).toFixed(2)}${suffix}`;
  return String(n);
}

export function formatValue(kind: ColumnKind, v: number | null): string {
  if (v === null) return '—';
  switch (kind) {
    case 'params':
      return formatCount(v).replace(/G$/, 'B');
    case 'macs':
      return formatCount(v);
    case 'perplexity':
      return v.toFixed(2);
    case 'accuracy':
    case 'average':
      return (v * 100).toFixed(2);
    case 'speed':
      return v >= 100 ? v.toFixed(0) : v.toFixed(1);
  }
}

/** The comparison as a fixed-width text table (accuracies in %, changes relative to the first row), then the summary. */
export function formatTable(metrics: MetricsFile): string {
  const cmp = comparison(metrics);
  const header = ['model', ...cmp.columns.map((c) => c.label)];
  const body = cmp.rows.map((row) => [
    row.model,
    ...cmp.columns.map((c) => {
      const text = formatValue(c.kind, row.values[c.key] ?? null);
      const ratio = row.ratio?.[c.key];
      return ratio == null ? text : `${text} (${signedChange(ratio)})`;
    }),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line), ...cmp.summary].join('\n');
}

/** Two runs' metrics side by side: every model of A, then every model of B, names prefixed with the labels. */
export function mergeForComparison(a: MetricsFile, b: MetricsFile, labels: [string, string] = ['A', 'B']): MetricsFile {
  const models: Record<string, ModelMetrics> = {};
  const tasks: Record<string, TaskInfo> = { ...(b.tasks ?? {}), ...(a.tasks ?? {}) };
  const aNames = Object.keys(a.models);
  const bNames = Object.keys(b.models);
  const baselineA = a.baseline && aNames.includes(a.baseline) ? a.baseline : aNames[0]!;
  for (const name of [baselineA, ...aNames.filter((n) => n !== baselineA)]) models[`${labels[0]}:${name}`] = a.models[name]!;
  for (const name of bNames) models[`${labels[1]}:${name}`] = b.models[name]!;
  const macsA = (a.settings as { macs_seq_len?: number } | undefined)?.macs_seq_len;
  const macsB = (b.settings as { macs_seq_len?: number } | undefined)?.macs_seq_len;
  return { models, baseline: `${labels[0]}:${baselineA}`, tasks, settings: macsA === macsB ? { macs_seq_len: macsA } : {} };
}

/** `lopper compare RUN_A RUN_B`: the table of both runs' models, relative to run A's first model. */
export function formatComparison(a: MetricsFile, b: MetricsFile, labels: [string, string] = ['A', 'B']): string {
  return formatTable(mergeForComparison(a, b, labels));
}

/** The same comparison as JSON for scripts (`--json`). */
export function comparisonJson(a: MetricsFile, b?: MetricsFile, labels: [string, string] = ['A', 'B']): Comparison {
  return comparison(b ? mergeForComparison(a, b, labels) : a);
}
