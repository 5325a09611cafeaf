// What `lopper inspect` reports: per-layer widths and parameter counts of a config, and — given a ratio or a
// parameter budget — of the config that local pruning of the chosen groups produces. Shapes only: no weights read.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import { countParameters, readHfConfig } from '../model/config.js';
import type { LlamaConfig } from '../model/types.js';
import { buildGroups, type GroupSpec } from './groups.js';
import { configAtRatio, layerParameterCount, ratioForTarget } from './shapes.js';

export interface LayerReport {
  layer: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  params: number;
}

export interface ShapeReport {
  hiddenSize: number;
  numLayers: number;
  params: number;
  layers: LayerReport[];
}

export interface InspectReport {
  source: string;
  before: ShapeReport;
  /** Present when a ratio or target was given. */
  after?: ShapeReport;
  ratio?: number;
  spec?: GroupSpec;
}

export function shapeReport(config: LlamaConfig): ShapeReport {
  return {
    hiddenSize: config.hiddenSize,
    numLayers: config.numHiddenLayers,
    params: countParameters(config),
    layers: config.layers.map((l, i) => ({ layer: i, heads: l.numAttentionHeads, kvHeads: l.numKeyValueHeads, intermediate: l.intermediateSize, params: layerParameterCount(config, i) })),
  };
}

/** Reads config.json from a file path or a model directory. */
export async function readConfigAt(path: string): Promise<{ config: LlamaConfig; file: string }> {
  const isDir = await stat(path).then((s) => s.isDirectory(), () => false);
  const file = isDir ? join(path, 'config.json') : path;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new LopperError('LP3003', `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      hint: 'Name a config.json file or a Hugging Face model directory holding one.',
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new LopperError('LP3003', `${file}: not valid JSON (${(e as Error).message})`);
  }
  return { config: readHfConfig(json, file), file };
}

export interface InspectOptions {
  spec: GroupSpec;
  ratio?: number;
  targetParams?: number;
  roundTo?: number;
}

export function inspectConfig(config: LlamaConfig, source: string, opts?: InspectOptions): InspectReport {
  const report: InspectReport = { source, before: shapeReport(config) };
  if (!opts || (opts.ratio === undefined && opts.targetParams === undefined)) return report;
  // Block mode without ranges: every layer's attention and MLP.
  const spec: GroupSpec = opts.spec.mode === 'block' && !opts.spec.attention && !opts.spec.mlp
    ? { ...opts.spec, attention: [0, config.numHiddenLayers], mlp: [0, config.numHiddenLayers] } : opts.spec;
  const groups = buildGroups(config, spec);
  let ratio = opts.ratio ?? 0;
  if (opts.targetParams !== undefined) {
    const solved = ratioForTarget(opts.targetParams, (r) => countParameters(configAtRatio(config, groups, r, opts.roundTo)));
    if (solved === null) throw new LopperError('LP4008', `no ratio brings ${report.before.params} parameters down to ${opts.targetParams} by pruning these layers`);
    ratio = solved;
  }
  if (!(ratio >= 0 && ratio < 1)) throw new LopperError('LP4009', `ratio must be in [0, 1), got ${ratio}`);
  report.ratio = ratio;
  report.spec = spec;
  report.after = shapeReport(configAtRatio(config, groups, ratio, opts.roundTo));
  return report;
}
