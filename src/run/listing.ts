// Text for `lopper show` (runs) and `lopper cache ls` (store entries).
import { formatDuration } from './progress.js';
import type { RunRecord } from './provenance.js';
import type { StoreEntry } from './store.js';

function table(header: string[], rows: string[][], rightAlign: number[] = []): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (rightAlign.includes(i) ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** The first perplexity of each model of the first evaluate stage, e.g. "pruned ppl 12.3". */
function headlineMetrics(r: RunRecord): string {
  const parts: string[] = [];
  for (const m of Object.values(r.metrics)) {
    const models = (m as { models?: Record<string, { perplexity?: Record<string, number> }> }).models ?? {};
    for (const [name, v] of Object.entries(models)) {
      const ppl = Object.entries(v.perplexity ?? {})[0];
      if (ppl) parts.push(`${name} ppl(${ppl[0]}) ${ppl[1].toFixed(2)}`);
    }
    break;
  }
  return parts.join(', ');
}

export function formatRuns(runs: RunRecord[]): string {
  if (runs.length === 0) return 'no runs recorded';
  const rows = runs.map((r) => {
    const st = Object.values(r.stages);
    return [
      r.id, r.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), r.status,
      `${st.filter((s) => s.status === 'ran').length}/${st.filter((s) => s.status === 'cached').length}`,
      formatDuration(r.wallMs), r.backend.backend ?? '-', r.git.commit ? `${r.git.commit.slice(0, 8)}${r.git.dirty ? '+' : ''}` : '-',
      headlineMetrics(r),
    ];
  });
  return table(['run', 'started', 'status', 'ran/cached', 'wall', 'backend', 'git', 'metrics'], rows, [4]);
}

export function formatRun(r: RunRecord): string {
  const lines = [
    `run ${r.id}  ${r.status}  ${r.startedAt} → ${r.finishedAt} (${formatDuration(r.wallMs)})`,
    `recipe ${r.recipe.path} (${r.recipe.name})${r.recipe.set.length ? `  --set ${r.recipe.set.join(' ')}` : ''}`,
    `lopper ${r.lopper.version}, node ${r.node.version} ${r.node.platform}-${r.node.arch}, backend ${r.backend.backend ?? '-'} (requested ${r.backend.requested}${r.backend.adapter ? `, adapter ${r.backend.adapter}` : ''}; ${r.backend.source})`,
    `seed ${r.seed}, git ${r.git.commit ?? '(not a git repo)'}${r.git.dirty ? ' (dirty)' : ''}, peak RSS ${formatBytes(r.peakRssBytes)}`,
    '',
    table(['stage', 'kind', 'status', 'wall', 'peak RSS', 'key'], Object.entries(r.stages).map(([id, s]) => [
      id, s.kind, s.status, s.wallMs === undefined ? '-' : formatDuration(s.wallMs), s.peakRssBytes ? formatBytes(s.peakRssBytes) : '-', s.key.slice(0, 12),
    ]), [3, 4]),
  ];
  const head = headlineMetrics(r);
  if (head) lines.push('', `metrics: ${head}`);
  return lines.join('\n');
}

export function formatEntries(entries: StoreEntry[]): string {
  if (entries.length === 0) return 'store is empty';
  const rows = entries.map((e) => [e.key.slice(0, 12), e.meta.stageId, e.meta.kind, e.meta.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), formatDuration(e.meta.wallMs), formatBytes(e.bytes)]);
  const total = entries.reduce((n, e) => n + e.bytes, 0);
  return `${table(['key', 'stage', 'kind', 'created', 'took', 'size'], rows, [4, 5])}\n${entries.length} outputs, ${formatBytes(total)}`;
}
