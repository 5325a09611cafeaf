// The report's charts as Vega-Lite specs whose data are the stored numbers (inline `values`, so the page needs no
// loader and no network). Every chart draws one mark per data row — a point or a bar — so a reader (and the browser
// test) can count them against the files.
import type { TopLevelSpec } from 'vega-lite';
import type { ModelMetrics } from '../eval/report.js';
import type { StageImportance, StagePlan, StageResults, StageTraining } from './collect.js';

export interface Chart {
  /** DOM id of the chart's container. */
  id: string;
  title: string;
  spec: TopLevelSpec;
  /** Data rows, i.e. marks the chart draws. */
  points: number;
}

type Row = Record<string, string | number | boolean>;

const WIDTH = 420;
const HEIGHT = 220;

function slug(text: string): string {
  return text.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').toLowerCase();
}

/** Points joined by lines per series: LLM-Pruner's per-layer curves, loss curves. */
function pointLines(id: string, title: string, values: Row[], x: { field: string; title: string; type?: 'quantitative' | 'ordinal' }, y: { field: string; title: string; log?: boolean }, series: { field: string; title: string }): Chart {
  const encoding = {
    // Layers and steps are whole numbers: no 0.2-layer ticks.
    x: { field: x.field, type: x.type ?? 'quantitative', title: x.title, axis: { tickMinStep: 1, format: 'd' } },
    y: { field: y.field, type: 'quantitative' as const, title: y.title, scale: y.log ? { type: 'log' as const } : { zero: false } },
    color: { field: series.field, type: 'nominal' as const, title: series.title },
    tooltip: [{ field: series.field }, { field: x.field }, { field: y.field, format: '.5~g' }],
  };
  return {
    id, title, points: values.length,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      width: WIDTH, height: HEIGHT, data: { values },
      layer: [
        { mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x: encoding.x, y: encoding.y, color: encoding.color } },
        { mark: { type: 'point', filled: true, size: 30 }, encoding },
      ],
    },
  };
}

/** Sum of a layer's unit scores per module: the group importance LLM-Pruner plots per layer. */
export function importanceChart(imp: StageImportance): Chart | undefined {
  const values: Row[] = [];
  for (const [layer, kinds] of Object.entries(imp.layers)) {
    for (const [module, scores] of Object.entries(kinds)) {
      if (scores) values.push({ layer: Number(layer), module, importance: scores.reduce((a, b) => a + b, 0) });
    }
  }
  if (values.length === 0) return undefined;
  values.sort((a, b) => Number(a.layer) - Number(b.layer));
  return pointLines(`importance-${slug(imp.stage)}`, `${imp.stage}: group importance per layer (${imp.importance}, sum over units)`, values,
    { field: 'layer', title: 'layer' }, { field: 'importance', title: 'importance' }, { field: 'module', title: 'module' });
}

/** The layer whose unit scores the distribution shows: the middle one of the scored layers (MLP channels first). */
export function distributionLayer(imp: StageImportance): { layer: string | null; module: string; scores: number[] } | undefined {
  for (const module of ['mlp', 'attention'] as const) {
    const layers = Object.keys(imp.layers).filter((l) => imp.layers[l]![module]?.length).sort((a, b) => Number(a) - Number(b));
    if (layers.length > 0) {
      const layer = layers[Math.floor((layers.length - 1) / 2)]!;
      return { layer, module, scores: imp.layers[layer]![module]! };
    }
  }
  return imp.hidden?.length ? { layer: null, module: 'hidden', scores: imp.hidden } : undefined;
}

/** One layer's unit scores, largest first, marked kept or removed by the prune stage that read them. */
export function distributionChart(imp: StageImportance, plan: StagePlan | undefined): Chart | undefined {
  const pick = distributionLayer(imp);
  if (!pick) return undefined;
  const layerPlan = pick.layer === null ? undefined : plan?.plan.layers[pick.layer];
  const kept = pick.module === 'hidden' ? plan?.plan.hidden?.keep
    : pick.module === 'mlp' ? layerPlan?.mlp.keep : layerPlan?.attention.keep_kv_heads;
  const keptSet = kept ? new Set(kept) : undefined;
  const values: Row[] = pick.scores.map((score, unit) => ({ unit, score, ...(keptSet ? { fate: keptSet.has(unit) ? 'kept' : 'removed' } : {}) }))
    .sort((a, b) => Number(b.score) - Number(a.score)).map((r, rank) => ({ ...r, rank }));
  const where = pick.layer === null ? 'hidden channels' : `layer ${pick.layer} ${pick.module === 'mlp' ? 'MLP channels' : 'attention groups'}`;
  return {
    id: `distribution-${slug(imp.stage)}`, title: `${imp.stage}: unit scores of ${where}, largest first${plan ? ` (kept by ${plan.stage})` : ''}`,
    points: values.length,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      width: WIDTH, height: HEIGHT, data: { values },
      mark: { type: 'point', filled: true, size: 18 },
      encoding: {
        x: { field: 'rank', type: 'quantitative', title: 'rank' },
        y: { field: 'score', type: 'quantitative', title: 'score' },
        ...(keptSet ? { color: { field: 'fate', type: 'nominal', title: '', scale: { domain: ['kept', 'removed'], range: ['#1f77b4', '#d62728'] } } } : {}),
        tooltip: [{ field: 'unit' }, { field: 'score', format: '.5~g' }, ...(keptSet ? [{ field: 'fate' }] : [])],
      },
    },
  };
}

export interface LayerWidths { layer: number; heads: { original: number; kept: number }; channels: { original: number; kept: number } }

/**
 * Per layer, query heads and MLP channels kept against the original. The original widths are the unit counts of
 * the importance file (a pruned layer) or the kept counts (a layer the plan left whole); query heads per KV group are
 * the same before and after (GQA groups are removed whole).
 */
export function layerWidths(plan: StagePlan, imp: StageImportance | undefined): LayerWidths[] {
  return Object.entries(plan.plan.layers).map(([layer, l]) => {
    const groupSize = l.attention.num_attention_heads / Math.max(1, l.attention.num_key_value_heads);
    const kvBefore = imp?.layers[layer]?.attention?.length ?? l.attention.keep_kv_heads.length;
    return {
      layer: Number(layer),
      heads: { original: kvBefore * groupSize, kept: l.attention.num_attention_heads },
      channels: { original: imp?.layers[layer]?.mlp?.length ?? l.mlp.keep.length, kept: l.mlp.intermediate_size },
    };
  }).sort((a, b) => a.layer - b.layer);
}

function widthBars(id: string, title: string, values: Row[], yTitle: string): Chart {
  return {
    id, title, points: values.length,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      width: WIDTH, height: HEIGHT, data: { values },
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'layer', type: 'ordinal', title: 'layer', axis: { labelAngle: 0 } },
        xOffset: { field: 'series', type: 'nominal', sort: ['original', 'kept'] },
        y: { field: 'width', type: 'quantitative', title: yTitle },
        color: { field: 'series', type: 'nominal', title: '', sort: ['original', 'kept'], scale: { range: ['#c7c7c7', '#1f77b4'] } },
        tooltip: [{ field: 'layer' }, { field: 'series' }, { field: 'width' }],
      },
    },
  };
}

export function widthCharts(plan: StagePlan, imp: StageImportance | undefined): Chart[] {
  const widths = layerWidths(plan, imp);
  const rows = (pick: (w: LayerWidths) => { original: number; kept: number }) =>
    widths.flatMap((w) => [{ layer: w.layer, series: 'original', width: pick(w).original }, { layer: w.layer, series: 'kept', width: pick(w).kept }]);
  const ratio = `${plan.plan.params_after.toLocaleString('en-US')} of ${plan.plan.params_before.toLocaleString('en-US')} parameters`;
  return [
    widthBars(`heads-${slug(plan.stage)}`, `${plan.stage}: attention heads per layer (${ratio})`, rows((w) => w.heads), 'query heads'),
    widthBars(`channels-${slug(plan.stage)}`, `${plan.stage}: MLP channels per layer`, rows((w) => w.channels), 'channels'),
  ];
}

/** Training loss at every step and validation loss where it was measured. */
export function lossChart(t: StageTraining): Chart | undefined {
  const values: Row[] = t.log.map((r) => ('loss' in r ? { step: r.step, loss: r.loss, split: 'train' } : { step: r.step, loss: r.val_loss, split: 'validation' }));
  if (values.length === 0) return undefined;
  return pointLines(`loss-${slug(t.stage)}`, `${t.stage} (${t.kind}): loss per step`, values,
    { field: 'step', title: 'step' }, { field: 'loss', title: 'loss' }, { field: 'split', title: '' });
}

export interface FrontierPoint { model: string; stage: string; params: number; macs?: number; metrics: ModelMetrics }

/** Every model evaluated in the run, once (a sweep evaluates `base` in each instance; its first result stands). */
export function frontierPoints(results: StageResults[]): FrontierPoint[] {
  const seen = new Map<string, FrontierPoint>();
  for (const r of results) {
    for (const [model, m] of Object.entries(r.metrics.models)) {
      if (!seen.has(model)) seen.set(model, { model, stage: model.split('@')[0]!, params: m.params, ...(m.macs === undefined ? {} : { macs: m.macs }), metrics: m });
    }
  }
  return [...seen.values()];
}

/** Parameters against each perplexity and each task's accuracy, one point per evaluated model. */
export function frontierCharts(results: StageResults[]): Chart[] {
  const points = frontierPoints(results);
  if (points.length < 2) return [];
  const metricOf = (task: string) => results.find((r) => r.metrics.tasks?.[task])?.metrics.tasks?.[task]?.metric ?? 'acc';
  const series: { key: string; title: string; value: (m: ModelMetrics) => number | undefined; log: boolean }[] = [];
  for (const d of [...new Set(points.flatMap((p) => Object.keys(p.metrics.perplexity)))]) {
    // Log scale once perplexities span a decade (50% pruning without recovery can multiply it).
    const all = points.map((p) => p.metrics.perplexity[d]).filter((v): v is number => v !== undefined);
    series.push({ key: `ppl-${d}`, title: `${d} perplexity`, value: (m) => m.perplexity[d], log: Math.max(...all) / Math.min(...all) >= 10 });
  }
  for (const t of [...new Set(points.flatMap((p) => Object.keys(p.metrics.zero_shot)))]) {
    const metric = metricOf(t);
    series.push({ key: `acc-${t}`, title: `${t} ${metric}`, value: (m) => m.zero_shot[t]?.[metric], log: false });
  }
  return series.flatMap((s) => {
    const values: Row[] = points.flatMap((p) => {
      const v = s.value(p.metrics);
      return v === undefined ? [] : [{ model: p.model, stage: p.stage, params: p.params, ...(p.macs === undefined ? {} : { macs: p.macs }), value: v }];
    });
    if (values.length === 0) return [];
    return [{
      id: `frontier-${slug(s.key)}`, title: `parameters against ${s.title}`, points: values.length,
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        width: WIDTH, height: HEIGHT, data: { values },
        mark: { type: 'point', filled: true, size: 70 },
        encoding: {
          x: { field: 'params', type: 'quantitative', title: 'parameters', scale: { zero: false }, axis: { format: '~s' } },
          y: { field: 'value', type: 'quantitative', title: s.title, scale: s.log ? { type: 'log' } : { zero: false } },
          color: { field: 'stage', type: 'nominal', title: 'stage' },
          tooltip: [{ field: 'model' }, { field: 'params', format: ',' }, ...(values.some((v) => 'macs' in v) ? [{ field: 'macs', format: ',' }] : []), { field: 'value', title: s.title, format: '.5~g' }],
        },
      },
    } satisfies Chart];
  });
}
