// `lopper compare A B`: which resolved parameters differ between two runs, and how every metric moved.
import type { RunRecord } from './provenance.js';

export interface ParamChange { path: string; a: unknown; b: unknown }
export interface MetricDelta { path: string; a: number | null; b: number | null; delta: number | null; relative: number | null }
export interface RunComparison {
  a: { id: string; startedAt: string };
  b: { id: string; startedAt: string };
  params: ParamChange[];
  /** Other recorded settings that differ (seed, backend, lopper / node versions, git commit). */
  environment: ParamChange[];
  metrics: MetricDelta[];
}

function leaves(v: unknown, prefix: string, out: Map<string, unknown>): Map<string, unknown> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) leaves(x, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, v);
  }
  return out;
}

function changes(a: Map<string, unknown>, b: Map<string, unknown>): ParamChange[] {
  const out: ParamChange[] = [];
  for (const path of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    if (JSON.stringify(a.get(path)) !== JSON.stringify(b.get(path))) out.push({ path, a: a.get(path), b: b.get(path) });
  }
  return out;
}

export function compareRuns(a: RunRecord, b: RunRecord): RunComparison {
  const pa = leaves(Object.fromEntries(Object.entries(a.recipe.resolved.stages).map(([id, s]) => [id, s.params])), '', new Map());
  const pb = leaves(Object.fromEntries(Object.entries(b.recipe.resolved.stages).map(([id, s]) => [id, s.params])), '', new Map());
  const env = (r: RunRecord) => new Map<string, unknown>([
    ['seed', r.seed], ['backend', r.backend.backend], ['adapter', r.backend.adapter], ['runtime.backend', r.recipe.resolved.runtime.backend],
    ['runtime.precision', r.recipe.resolved.runtime.precision], ['lopper', r.lopper.version], ['node', r.node.version],
    ['git.commit', r.git.commit], ['git.dirty', r.git.dirty],
  ]);
  const ma = leaves(a.metrics, '', new Map());
  const mb = leaves(b.metrics, '', new Map());
  const metrics: MetricDelta[] = [];
  for (const path of [...new Set([...ma.keys(), ...mb.keys()])].sort()) {
    const x = ma.get(path);
    const y = mb.get(path);
    if (typeof x !== 'number' && typeof y !== 'number') continue;
    const nx = typeof x === 'number' ? x : null;
    const ny = typeof y === 'number' ? y : null;
    const delta = nx !== null && ny !== null ? ny - nx : null;
    metrics.push({ path, a: nx, b: ny, delta, relative: delta !== null && nx !== 0 && nx !== null ? delta / Math.abs(nx) : null });
  }
  return {
    a: { id: a.id, startedAt: a.startedAt },
    b: { id: b.id, startedAt: b.startedAt },
    params: changes(pa, pb),
    environment: changes(env(a), env(b)),
    metrics,
  };
}

function fmt(v: unknown): string {
  if (v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+$/, '');
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd();
  return [line(header), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

export function formatComparison(c: RunComparison, opts: { all?: boolean } = {}): string {
  const parts: string[] = [`A ${c.a.id} (${c.a.startedAt})`, `B ${c.b.id} (${c.b.startedAt})`, ''];
  parts.push(c.params.length ? table(['parameter', 'A', 'B'], c.params.map((p) => [p.path, fmt(p.a), fmt(p.b)])) : 'parameters: identical');
  if (c.environment.length) parts.push('', table(['setting', 'A', 'B'], c.environment.map((p) => [p.path, fmt(p.a), fmt(p.b)])));
  const ms = opts.all ? c.metrics : c.metrics.filter((m) => m.delta !== 0);
  parts.push('');
  if (ms.length === 0) parts.push(c.metrics.length ? 'metrics: identical' : 'metrics: none recorded');
  else {
    parts.push(table(['metric', 'A', 'B', 'delta', 'change'], ms.map((m) => [
      m.path, fmt(m.a ?? undefined), fmt(m.b ?? undefined),
      m.delta === null ? '—' : (m.delta > 0 ? '+' : '') + fmt(m.delta),
      m.relative === null ? '—' : `${m.relative > 0 ? '+' : ''}${(m.relative * 100).toFixed(2)}%`,
    ])));
  }
  return parts.join('\n');
}
