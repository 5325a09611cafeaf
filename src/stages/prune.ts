// prune stage: decide the kept units (src/prune/selection.ts), cut the weights (src/prune/surgery.ts), check the
// result is a legal model, and write plan.json + model/ (DESIGN.md). `ratio` applies per group (local) or to all
// units at once (global); `target_params` instead solves for the smallest ratio whose result has at most that many
// parameters (bisection on the exact parameter count of the would-be model). `scope: adaptive` is FLAP's AL-AM
// (selection.ts); an importance from `flap` carries mean inputs, and the pruned model gets FLAP's compensation
// biases (bias-compensation.ts) unless `bias_compensation: false`.
import { join } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import { readSafetensors } from '../model/safetensors.js';
import { compensatedConfig, compensatedGroups, type MeanInputs } from '../prune/bias-compensation.js';
import { countParameters } from '../model/config.js';
import type { ResidentModel } from '../model/residency.js';
import { acquireModel } from './model-ref.js';
import { outputDtype, writeResidentModel } from './model-output.js';
import { pruneDeviceModel } from '../prune/device-surgery.js';
import type { LlamaConfig } from '../model/types.js';
import type { PruningGroup } from '../prune/groups.js';
import { checkLegal, keptUnits, type Scope, type ScoredGroup } from '../prune/selection.js';
import { configAfter, ratioForTarget, unitWeightCount } from '../prune/shapes.js';
import { enumParam, optionalNumber, stringParam } from '../prune/stage-params.js';
import { COMPENSATION_TENSORS, IMPORTANCE_FILE, groupFromJson, groupScores, readStageJson, writeJsonAtomic, type ImportanceFile } from '../prune/stage-files.js';
import type { StageContext, StageModule } from './types.js';

export interface PlanJson {
  params_before: number;
  params_after: number;
  layers: Record<string, {
    attention: { keep_kv_heads: number[]; num_attention_heads: number; num_key_value_heads: number };
    mlp: { keep: number[]; intermediate_size: number };
  }>;
  /** Channel mode only: kept hidden channels. */
  hidden?: { keep: number[]; hidden_size: number };
  /** Layer mode only: kept decoder layers (original numbering). */
  keep_layers?: number[];
  /** Groups whose removed units were folded into an o_proj / down_proj bias (FLAP bias compensation). */
  bias_compensation?: string[];
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The groups must still describe the model (units = the widths in its config). */
function checkAgainstConfig(groups: PruningGroup[], config: LlamaConfig, importanceRef: string): void {
  for (const g of groups) {
    const expected = g.kind === 'attention' ? config.layers[g.layer!]?.numKeyValueHeads
      : g.kind === 'mlp' ? config.layers[g.layer!]?.intermediateSize
        : g.kind === 'hidden' ? config.hiddenSize : g.layerIds!.every((l) => l < config.numHiddenLayers) ? g.units : -1;
    if (expected !== g.units) {
      throw new LopperError('LP4007', `importance of "${importanceRef}": group ${g.id} has ${g.units} units but the model has ${expected ?? 'no such layer'}`);
    }
  }
}

/** Every layer keeps a head and a channel, with query heads a multiple of KV heads (a loadable LLaMA config). */
export function checkConfig(config: LlamaConfig): void {
  if (config.hiddenSize < 1 || config.numHiddenLayers < 1) throw new LopperError('LP4004', 'the pruned model would have no hidden channels or no decoder layers');
  config.layers.forEach((l, i) => {
    if (l.numKeyValueHeads < 1 || l.numAttentionHeads < 1 || l.intermediateSize < 1) {
      throw new LopperError('LP4004', `layer ${i} would keep ${l.numAttentionHeads} heads, ${l.numKeyValueHeads} KV heads and ${l.intermediateSize} MLP channels; every layer needs at least one of each`);
    }
    if (l.numAttentionHeads % l.numKeyValueHeads !== 0) {
      throw new LopperError('LP4002', `layer ${i} would keep ${l.numAttentionHeads} query heads for ${l.numKeyValueHeads} KV heads (not a multiple)`);
    }
  });
}

function planJson(before: LlamaConfig, after: LlamaConfig, groups: PruningGroup[], kept: Map<string, number[]>, paramsBefore: number, paramsAfter: number): PlanJson {
  const plan: PlanJson = { params_before: paramsBefore, params_after: paramsAfter, layers: {} };
  let layerIds = range(before.numHiddenLayers);
  const layerGroup = groups.find((g) => g.kind === 'layer');
  if (layerGroup) {
    const k = new Set(kept.get(layerGroup.id)!.map((u) => layerGroup.layerIds![u]!));
    layerIds = layerIds.filter((i) => !layerGroup.layerIds!.includes(i) || k.has(i));
    plan.keep_layers = layerIds;
  }
  const hidden = groups.find((g) => g.kind === 'hidden');
  if (hidden) plan.hidden = { keep: kept.get(hidden.id)!, hidden_size: after.hiddenSize };
  layerIds.forEach((orig, j) => {
    const b = before.layers[orig]!;
    const a = after.layers[j]!;
    const attn = groups.find((g) => g.kind === 'attention' && g.layer === orig);
    const mlp = groups.find((g) => g.kind === 'mlp' && g.layer === orig);
    plan.layers[String(orig)] = {
      attention: { keep_kv_heads: attn ? kept.get(attn.id)! : range(b.numKeyValueHeads), num_attention_heads: a.numAttentionHeads, num_key_value_heads: a.numKeyValueHeads },
      mlp: { keep: mlp ? kept.get(mlp.id)! : range(b.intermediateSize), intermediate_size: a.intermediateSize },
    };
  });
  return plan;
}

const stage: StageModule = {
  kind: 'prune',
  // 3: scope adaptive, FLAP bias compensation (plan.json bias_compensation).
  version: '3',
  outputKind: 'model',
  async run(ctx: StageContext) {
    const p = ctx.params;
    const importanceRef = stringParam(p, 'importance', ctx.id);
    const scope = enumParam<Scope>(p, 'scope', ['local', 'global', 'adaptive'], 'local', ctx.id);
    const compensate = p.bias_compensation;
    if (compensate !== undefined && typeof compensate !== 'boolean') throw new LopperError('LP4009', `stage "${ctx.id}": \`bias_compensation\` must be true or false, got ${JSON.stringify(compensate)}`);
    const ratio = optionalNumber(p, 'ratio', ctx.id);
    const target = optionalNumber(p, 'target_params', ctx.id);
    const roundTo = optionalNumber(p, 'round_to', ctx.id);
    if ((ratio === undefined) === (target === undefined)) {
      throw new LopperError('LP4009', `stage "${ctx.id}": give exactly one of \`ratio\` and \`target_params\``);
    }
    if (ratio !== undefined && !(ratio >= 0 && ratio < 1)) throw new LopperError('LP4009', `stage "${ctx.id}": \`ratio\` must be in [0, 1), got ${ratio}`);
    if (roundTo !== undefined && !(Number.isInteger(roundTo) && roundTo >= 1)) throw new LopperError('LP4009', `stage "${ctx.id}": \`round_to\` must be a positive integer, got ${roundTo}`);

    const file = await readStageJson<ImportanceFile>(ctx.stageDir(importanceRef), IMPORTANCE_FILE, 'lopper.importance/1', importanceRef);
    outputDtype(ctx, 'float32'); // a bad `dtype:` fails before the model is loaded
    const groups = file.groups.map(groupFromJson);
    const scored: ScoredGroup[] = groups.map((g) => {
      const s = groupScores(file, g);
      if (s.length !== g.units || s.some((x) => typeof x !== 'number' || Number.isNaN(x))) {
        throw new LopperError('LP4007', `importance of "${importanceRef}": group ${g.id} has ${s.length} scores for ${g.units} units`);
      }
      return { group: g, scores: Float64Array.from(s) };
    });
    if (scope === 'adaptive' && groups.some((g) => g.kind !== 'attention' && g.kind !== 'mlp')) {
      throw new LopperError('LP4009', `stage "${ctx.id}": scope: adaptive ranks attention heads and MLP channels (group mode: block); "${importanceRef}" has ${file.mode}-mode groups`);
    }
    if (compensate === true && !file.compensation?.length) {
      throw new LopperError('LP4014', `stage "${ctx.id}": bias_compensation needs mean inputs, which only importance: flap records; "${importanceRef}" comes from importance ${file.importance}`);
    }
    const means = compensate === false || !file.compensation?.length ? new Map<string, Float32Array>()
      : await compensationInputs(join(ctx.stageDir(importanceRef), COMPENSATION_TENSORS), file.compensation);
    const lease = await acquireModel(ctx, file.model);
    try {
      return await pruneResident(ctx, lease.resident, { groups, scored, ratio, target, roundTo, scope, importanceRef, means });
    } finally {
      lease.release();
    }
  },
};
export default stage;

interface PruneRequest {
  groups: PruningGroup[];
  scored: ScoredGroup[];
  ratio: number | undefined;
  target: number | undefined;
  roundTo: number | undefined;
  scope: Scope;
  importanceRef: string;
  means: MeanInputs;
}

async function compensationInputs(path: string, ids: string[]): Promise<Map<string, Float32Array>> {
  const t = await readSafetensors(path);
  return new Map(ids.map((id) => {
    const v = t.get(id);
    if (!v) throw new LopperError('LP4007', `${path}: tensor "${id}" is missing`);
    return [id, v.data as Float32Array];
  }));
}

async function pruneResident(ctx: StageContext, base: ResidentModel, req: PruneRequest) {
  const { groups, scored, ratio, target, roundTo, scope, importanceRef, means } = req;
  const config = base.config;
  checkAgainstConfig(groups, config, importanceRef);
  const paramsBefore = countParameters(config);
  const cost = (g: PruningGroup) => unitWeightCount(config, g);
  const select = (x: number) => keptUnits(scored, x, scope, roundTo, cost);
  // The compensation biases count: target_params is met by the model as written.
  const shapeAfter = (kept: Map<string, number[]>) => compensatedConfig(configAfter(config, groups, kept), groups, kept, means);

  let r = ratio ?? 0;
  if (target !== undefined) {
    const paramsAt = (x: number) => countParameters(shapeAfter(select(x)));
    const solved = ratioForTarget(target, paramsAt);
    if (solved === null) {
      throw new LopperError('LP4008', `stage "${ctx.id}": no ratio brings ${paramsBefore} parameters down to target_params ${target} by pruning these groups`, {
        hint: 'Prune more layers (wider group ranges) or raise target_params.',
      });
    }
    r = solved;
    ctx.log(`target_params ${target}: ratio ${r}`);
  }
  const kept = select(r);
  checkLegal(groups, kept);
  const prunedConfig = shapeAfter(kept);
  checkConfig(prunedConfig);
  const paramsAfter = countParameters(prunedConfig);
  const dtype = outputDtype(ctx, base.dtype);
  const plan = planJson(config, prunedConfig, groups, kept, paramsBefore, paramsAfter);
  const compensated = compensatedGroups(groups, kept, means);
  if (compensated.length > 0) plan.bias_compensation = compensated.map((g) => g.id);
  await writeJsonAtomic(ctx.outDir, 'plan.json', plan);
  const model = pruneDeviceModel(base.model, groups, kept, means);
  // Last: once the write is in flight the stage returns, and the executor waits for it before committing.
  const pending = writeResidentModel(ctx, { ...base, config: prunedConfig, model, dtype }, join(ctx.outDir, 'model'));
  ctx.log(`${paramsBefore} -> ${paramsAfter} parameters (${((100 * paramsAfter) / paramsBefore).toFixed(2)}%), written as ${dtype}`);
  return { pending, summary: { params_before: paramsBefore, params_after: paramsAfter, ratio: r, scope, dtype, ...(compensated.length > 0 ? { bias_compensation: compensated.length } : {}) } };
}
