// score stage: per-member channel scores (src/prune/importance.ts) for every group of an upstream group stage.
// Taylor importance follows LLM-Pruner hf_prune.py (reference §2.3): g = gradient of the mean token CE over the whole
// [samples, seq_len] calibration batch (one backward); for param_second / param_mix also F = (1/N) Σ_j g_j², with
// g_j the gradient of sample j's own mean token CE (one backward per sample). Weights are never updated.
// Output: scores.safetensors (F32 `<group id>/<member role>` vectors + the int32 calibration batch) and scores.json.
import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { rename } from 'node:fs/promises';
import { LopperError, StageCancelled } from '../errors/lopper-error.js';
import { calibrationBatch, type Sampling } from '../data/calibration.js';
import { readTextRecords } from '../data/text.js';
import { LlamaModel } from '../model/llama.js';
import { loadModelRef } from './model-ref.js';
import { writeSafetensors, type WritableTensor } from '../model/safetensors.js';
import type { HostTensor, WeightMap } from '../model/types.js';
import { type PruningGroup, memberParam } from '../prune/groups.js';
import { channelScores, criteria, criterionOf, randomChannelScores, type Criterion, type ImportanceKind, type TaylorVariant } from '../prune/importance.js';
import { enumParam, stringParam } from '../prune/stage-params.js';
import {
  CALIBRATION_IDS, GROUPS_FILE, SCORES_FILE, SCORES_TENSORS, groupFromJson, readStageJson, writeJsonAtomic, type GroupsFile, type ScoresFile,
} from '../prune/stage-files.js';
import { deriveSeed, mulberry32 } from '../seeded-random.js';
import type { StageContext, StageModule } from './types.js';

/** Every parameter the groups' members name (layer mode: one per layer). */
function memberParams(groups: PruningGroup[]): string[] {
  const names = new Set<string>();
  for (const g of groups) {
    for (const m of g.members) {
      if (g.layerIds) g.layerIds.forEach((_, u) => names.add(memberParam(g, m, u)));
      else names.add(m.param);
    }
  }
  return [...names];
}

/** The groups must describe this model: every member exists with the channel count the group expects. */
function checkGroups(groups: PruningGroup[], weights: WeightMap, groupsRef: string): void {
  for (const g of groups) {
    for (const m of g.members) {
      if (g.layerIds) {
        for (let u = 0; u < g.units; u++) {
          if (!weights.has(memberParam(g, m, u))) throw new LopperError('LP4007', `groups of "${groupsRef}": ${memberParam(g, m, u)} is not a parameter of the model`);
        }
        continue;
      }
      const t = weights.get(m.param);
      const n = t ? (m.axis === 1 ? t.shape[1] : t.shape[0]) : undefined;
      if (n !== m.channels) {
        throw new LopperError('LP4007', `groups of "${groupsRef}": ${g.id}/${m.role} expects ${m.channels} channels of ${m.param}, the model has ${t ? JSON.stringify(t.shape) : 'no such parameter'}`);
      }
    }
  }
}

interface Calibration {
  dataset: string;
  samples: number;
  seqLen: number;
  sampling: Sampling;
}

function calibrationParams(p: Record<string, unknown>, stage: string): Calibration {
  const c = p.calibration;
  if (typeof c !== 'object' || c === null || typeof (c as Record<string, unknown>).dataset !== 'string') {
    throw new LopperError('LP4006', `stage "${stage}": importance: taylor needs \`calibration: { dataset: <name> }\``, {
      hint: 'e.g. calibration: { dataset: calib, samples: 10, seq_len: 64, sampling: sequential }',
    });
  }
  const cal = c as Record<string, unknown>;
  return {
    dataset: cal.dataset as string,
    samples: (cal.samples as number | undefined) ?? 10,
    seqLen: (cal.seq_len as number | undefined) ?? 64,
    sampling: enumParam<Sampling>(cal, 'sampling', ['sequential', 'random'], 'sequential', stage),
  };
}

interface Gradients {
  loss: number;
  g: WeightMap;
  f: Map<string, Float32Array> | null;
}

async function taylorGradients(ctx: StageContext, model: LlamaModel, ids: Int32Array, samples: number, seqLen: number, names: string[], fisher: boolean): Promise<Gradients> {
  ctx.progress.start('backward passes', 1 + (fisher ? samples : 0));
  // A macrotask turn before each check: on cpu/wasm tensor reads resolve as microtasks only, so SIGINT (which
  // aborts the signal) would otherwise not be seen until every backward pass is done.
  const check = async () => {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (ctx.signal.aborted) throw new StageCancelled(ctx.id);
  };
  let f: Map<string, Float32Array> | null = null;
  if (fisher) {
    f = new Map();
    for (let j = 0; j < samples; j++) {
      await check();
      const x = tf.tensor2d(ids.subarray(j * seqLen, (j + 1) * seqLen), [1, seqLen], 'int32');
      try {
        const { grads } = await model.gradients(x, names);
        for (const [name, gj] of grads) {
          let acc = f.get(name);
          if (!acc) f.set(name, (acc = new Float32Array(gj.data.length)));
          // LLM-Pruner: acc_grad += grad * grad / N.
          for (let k = 0; k < acc.length; k++) acc[k] = acc[k]! + (gj.data[k]! * gj.data[k]!) / samples;
        }
      } finally {
        x.dispose();
      }
      ctx.progress.tick();
    }
  }
  await check();
  const x = tf.tensor2d(ids, [samples, seqLen], 'int32');
  try {
    const { loss, grads } = await model.gradients(x, names);
    ctx.progress.tick();
    return { loss, g: grads, f };
  } finally {
    x.dispose();
  }
}

const stage: StageModule = {
  kind: 'score',
  version: '1',
  outputKind: 'scores',
  async run(ctx: StageContext) {
    const p = ctx.params;
    const groupsRef = stringParam(p, 'groups', ctx.id);
    const importance = enumParam<ImportanceKind>(p, 'importance', ['random', 'l1', 'l2', 'taylor'], 'taylor', ctx.id);
    const taylor = enumParam<TaylorVariant>(p, 'taylor', ['vectorize', 'param_first', 'param_second', 'param_mix'], 'param_first', ctx.id);
    const gf = await readStageJson<GroupsFile>(ctx.stageDir(groupsRef), GROUPS_FILE, 'lopper.groups/1', groupsRef);
    const groups = gf.groups.map(groupFromJson);
    const loaded = await loadModelRef(ctx, gf.model);
    checkGroups(groups, loaded.weights, groupsRef);

    const tensors = new Map<string, WritableTensor>();
    const index: Record<string, Record<string, string>> = {};
    const put = (g: PruningGroup, role: string, s: Float64Array) => {
      const name = `${g.id}/${role}`;
      tensors.set(name, { shape: [s.length], data: Float32Array.from(s) });
      (index[g.id] ??= {})[role] = name;
    };
    let calibrationJson: ScoresFile['calibration'] = null;
    let loss: number | null = null;

    if (importance === 'random') {
      // LLM-Pruner RandomImportance: uniform [0, 1) per channel of the root member only.
      const random = mulberry32(deriveSeed(ctx.seed));
      for (const g of groups) put(g, g.members[0]!.role, randomChannelScores(g.members[0]!.channels, random));
    } else {
      const criterion: Criterion = criterionOf(importance, taylor);
      const def = criteria[criterion];
      let grads: Gradients | null = null;
      if (importance === 'taylor') {
        const cal = calibrationParams(p, ctx.id);
        const spec = ctx.dataset(cal.dataset);
        if (!loaded.tokenizer) throw new LopperError('LP4006', `stage "${ctx.id}": model "${gf.model}" has no tokenizer, which calibration needs`);
        const batch = calibrationBatch(await readTextRecords(spec), loaded.tokenizer, { ...cal, seed: ctx.seed }, spec.name);
        tensors.set(CALIBRATION_IDS, { shape: [batch.samples, batch.seqLen], data: batch.ids });
        calibrationJson = { dataset: cal.dataset, samples: cal.samples, seq_len: cal.seqLen, sampling: cal.sampling, records: batch.records };
        const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
        try {
          grads = await taylorGradients(ctx, model, batch.ids, batch.samples, batch.seqLen, memberParams(groups), def.needsFisher);
        } finally {
          model.dispose();
        }
        loss = grads.loss;
        ctx.progress.note(`calibration loss ${loss.toFixed(4)}`);
      }
      const scoreOf = (name: string, axis: 0 | 1 | null): Float64Array => {
        const w = loaded.weights.get(name) as HostTensor;
        const g = grads?.g.get(name)?.data;
        const f = grads?.f?.get(name);
        if ((def.needsGradient && !g) || (def.needsFisher && !f)) throw new LopperError('LP4011', `no gradient for ${name}`);
        return channelScores(criterion, w, axis, g, f);
      };
      for (const g of groups) {
        for (const m of g.members) {
          if (g.layerIds) put(g, m.role, Float64Array.from(g.layerIds.map((_, u) => scoreOf(memberParam(g, m, u), null)[0]!)));
          else put(g, m.role, scoreOf(m.param, m.axis));
        }
      }
    }

    const tmp = join(ctx.outDir, `.${SCORES_TENSORS}.tmp-${process.pid}`);
    await writeSafetensors(tmp, tensors, { format: 'lopper.scores/1' });
    await rename(tmp, join(ctx.outDir, SCORES_TENSORS));
    const file: ScoresFile = {
      format: 'lopper.scores/1', model: gf.model, mode: gf.mode, importance, taylor: importance === 'taylor' ? taylor : null,
      calibration: calibrationJson, loss, groups: gf.groups, tensors: index,
    };
    await writeJsonAtomic(ctx.outDir, SCORES_FILE, file);
    return { summary: { importance, ...(importance === 'taylor' ? { taylor, loss } : {}), groups: groups.length } };
  },
};
export default stage;
