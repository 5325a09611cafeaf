// score stage: per-member channel scores (src/prune/importance.ts) for every group of an upstream group stage.
// Taylor importance follows LLM-Pruner hf_prune.py (reference §2.3): g = gradient of the mean token CE over the whole
// [samples, seq_len] calibration batch (one backward); for param_second / param_mix also F = (1/N) Σ_j g_j², with
// g_j the gradient of sample j's own mean token CE (one backward per sample). Weights are never updated.
// The forward-statistics kinds (wanda, flap, block_influence; src/prune/forward-scores.ts) calibrate on the same
// batch through forward passes only. Output: scores.safetensors (F32 `<group id>/<member role>` vectors, flap's
// `<group id>/mean_input`, the int32 calibration batch) and scores.json.
import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { rename } from 'node:fs/promises';
import { LopperError, StageCancelled } from '../errors/lopper-error.js';
import { calibrationBatch, type Sampling } from '../data/calibration.js';
import { readTextRecords } from '../data/text.js';
import { LlamaModel } from '../model/llama.js';
import { acquireModel } from './model-ref.js';
import { parameterShapes } from '../model/config.js';
import { deviceChannelScores } from '../prune/device-importance.js';
import { writeSafetensors, type WritableTensor } from '../model/safetensors.js';
import type { HostTensor } from '../model/types.js';
import { type PruningGroup, memberParam } from '../prune/groups.js';
import { channelScores, criteria, criterionOf, randomChannelScores, type Criterion, type ImportanceKind, type TaylorVariant } from '../prune/importance.js';
import { FLAP_METRICS, type FlapMetric } from '../prune/forward-importance.js';
import { FORWARD_KINDS, checkForwardGroups, forwardScores, isForwardKind, type ForwardKind } from '../prune/forward-scores.js';
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
function checkGroups(groups: PruningGroup[], weights: Map<string, number[]>, groupsRef: string): void {
  for (const g of groups) {
    for (const m of g.members) {
      if (g.layerIds) {
        for (let u = 0; u < g.units; u++) {
          if (!weights.has(memberParam(g, m, u))) throw new LopperError('LP4007', `groups of "${groupsRef}": ${memberParam(g, m, u)} is not a parameter of the model`);
        }
        continue;
      }
      const t = weights.get(m.param);
      const n = t ? (m.axis === 1 ? t[1] : t[0]) : undefined;
      if (n !== m.channels) {
        throw new LopperError('LP4007', `groups of "${groupsRef}": ${g.id}/${m.role} expects ${m.channels} channels of ${m.param}, the model has ${t ? JSON.stringify(t) : 'no such parameter'}`);
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

function calibrationParams(p: Record<string, unknown>, stage: string, importance: string): Calibration {
  const c = p.calibration;
  if (typeof c !== 'object' || c === null || typeof (c as Record<string, unknown>).dataset !== 'string') {
    throw new LopperError('LP4006', `stage "${stage}": importance: ${importance} needs \`calibration: { dataset: <name> }\``, {
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

/** Gradients on the device by parameter name; F (Fisher) on the device or on the host (see scoreOnDevice). */
interface Gradients {
  loss: number;
  g: Map<string, tf.Tensor>;
  f: Map<string, tf.Tensor | Float32Array> | null;
  dispose(): void;
}

/**
 * Where channel scores are summed: on a GPU on the device in float32 (device-importance.ts); elsewhere on the host
 * in float64 (importance.ts), where the data is anyway.
 */
function scoreOnDevice(): boolean {
  return tf.getBackend() === 'webgpu';
}

/** The single gradient tensor of a member parameter (members are never the split embedding / LM head). */
function single(parts: tf.Tensor[], name: string): tf.Tensor {
  if (parts.length !== 1) throw new LopperError('LP4011', `${name} is split into row chunks; it cannot be a group member`);
  return parts[0]!;
}

async function taylorGradients(ctx: StageContext, model: LlamaModel, ids: Int32Array, samples: number, seqLen: number, names: string[], fisher: boolean): Promise<Gradients> {
  ctx.progress.start('backward passes', 1 + (fisher ? samples : 0));
  // A macrotask turn before each check: on cpu/wasm tensor reads resolve as microtasks only, so SIGINT (which
  // aborts the signal) would otherwise not be seen until every backward pass is done.
  const check = async () => {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (ctx.signal.aborted) throw new StageCancelled(ctx.id);
  };
  const f = fisher ? new Map<string, tf.Tensor | Float32Array>() : null;
  const g = new Map<string, tf.Tensor>();
  const dispose = () => {
    for (const t of g.values()) t.dispose();
    for (const t of f?.values() ?? []) if (t instanceof tf.Tensor) t.dispose();
  };
  try {
    for (let j = 0; fisher && j < samples; j++) {
      await check();
      const x = tf.tensor2d(ids.subarray(j * seqLen, (j + 1) * seqLen), [1, seqLen], 'int32');
      const { loss, grads } = model.deviceGradients(x, names);
      try {
        for (const [name, parts] of grads) await accumulateFisher(f!, name, single(parts, name), samples);
      } finally {
        x.dispose();
        loss.dispose();
        for (const parts of grads.values()) for (const t of parts) t.dispose();
      }
      ctx.progress.tick();
    }
    await check();
    const x = tf.tensor2d(ids, [samples, seqLen], 'int32');
    const { loss, grads } = model.deviceGradients(x, names);
    x.dispose();
    for (const [name, parts] of grads) g.set(name, single(parts, name));
    const lossValue = (await loss.data())[0]!;
    loss.dispose();
    ctx.progress.tick();
    return { loss: lossValue, g, f, dispose };
  } catch (e) {
    dispose();
    throw e;
  }
}

/** LLM-Pruner: acc_grad += grad * grad / N (float32 accumulator; on the device when scoring there). */
async function accumulateFisher(f: Map<string, tf.Tensor | Float32Array>, name: string, gj: tf.Tensor, samples: number): Promise<void> {
  const acc = f.get(name);
  if (scoreOnDevice()) {
    f.set(name, tf.tidy(() => { const add = tf.div(tf.square(gj), samples); return acc instanceof tf.Tensor ? tf.add(acc, add) : add; }));
    if (acc instanceof tf.Tensor) acc.dispose();
    return;
  }
  const data = (await gj.data()) as Float32Array;
  const host = (acc as Float32Array | undefined) ?? new Float32Array(data.length);
  for (let k = 0; k < host.length; k++) host[k] = host[k]! + (data[k]! * data[k]!) / samples;
  f.set(name, host);
}

/** One member's channel scores, on the device or on the host (downloading its weight and gradients only). */
async function memberScores(criterion: Criterion, model: LlamaModel, name: string, axis: 0 | 1 | null, grads: Gradients | null): Promise<Float64Array> {
  const def = criteria[criterion];
  const w = single(model.variablesOf(name), name);
  const g = grads?.g.get(name);
  const f = grads?.f?.get(name);
  if ((def.needsGradient && !g) || (def.needsFisher && !f)) throw new LopperError('LP4011', `no gradient for ${name}`);
  if (scoreOnDevice()) return deviceChannelScores(criterion, w, axis, g, f as tf.Tensor | undefined);
  const host: HostTensor = { shape: w.shape.slice(), data: (await w.data()) as Float32Array };
  const gHost = g ? ((await g.data()) as Float32Array) : undefined;
  return channelScores(criterion, host, axis, gHost, f as Float32Array | undefined);
}

const stage: StageModule = {
  kind: 'score',
  // 2: on WebGPU, channel sums on the device in float32 (cpu/wasm: float64 host sums, unchanged).
  // 3: forward-statistics kinds (wanda, flap, block_influence); scores.json may carry flap / mean_inputs.
  version: '3',
  outputKind: 'scores',
  async run(ctx: StageContext) {
    const p = ctx.params;
    const groupsRef = stringParam(p, 'groups', ctx.id);
    const importance = enumParam<ImportanceKind | ForwardKind>(p, 'importance', ['random', 'l1', 'l2', 'taylor', ...FORWARD_KINDS], 'taylor', ctx.id);
    const taylor = enumParam<TaylorVariant>(p, 'taylor', ['vectorize', 'param_first', 'param_second', 'param_mix'], 'param_first', ctx.id);
    const flap = enumParam<FlapMetric>(p, 'flap', FLAP_METRICS, 'WIFV', ctx.id);
    const gf = await readStageJson<GroupsFile>(ctx.stageDir(groupsRef), GROUPS_FILE, 'lopper.groups/1', groupsRef);
    const groups = gf.groups.map(groupFromJson);
    const lease = await acquireModel(ctx, gf.model);
    const resident = lease.resident;
    checkGroups(groups, parameterShapes(resident.config), groupsRef);
    if (isForwardKind(importance)) checkForwardGroups(importance, groups, ctx.id);

    const tensors = new Map<string, WritableTensor>();
    const index: Record<string, Record<string, string>> = {};
    const put = (g: PruningGroup, role: string, s: Float64Array) => {
      const name = `${g.id}/${role}`;
      tensors.set(name, { shape: [s.length], data: Float32Array.from(s) });
      (index[g.id] ??= {})[role] = name;
    };
    let calibrationJson: ScoresFile['calibration'] = null;
    let loss: number | null = null;
    let grads: Gradients | null = null;
    const meanInputs: Record<string, string> = {};
    const calibrate = async () => {
      const cal = calibrationParams(p, ctx.id, importance);
      const spec = ctx.dataset(cal.dataset);
      if (!resident.tokenizer) throw new LopperError('LP4006', `stage "${ctx.id}": model "${gf.model}" has no tokenizer, which calibration needs`);
      const batch = calibrationBatch(await readTextRecords(spec), resident.tokenizer, { ...cal, seed: ctx.seed }, spec.name);
      tensors.set(CALIBRATION_IDS, { shape: [batch.samples, batch.seqLen], data: batch.ids });
      calibrationJson = { dataset: cal.dataset, samples: cal.samples, seq_len: cal.seqLen, sampling: cal.sampling, records: batch.records };
      return batch;
    };
    try {
      if (isForwardKind(importance)) {
        const batch = await calibrate();
        ctx.progress.start('forward samples', batch.samples);
        let done = 0;
        const scores = await forwardScores(resident.model, groups, { kind: importance, metric: flap, ids: batch.ids, samples: batch.samples, seqLen: batch.seqLen, stage: ctx.id }, {
          between: async (n) => {
            await new Promise<void>((resolve) => setImmediate(resolve));
            if (ctx.signal.aborted) throw new StageCancelled(ctx.id);
            ctx.progress.tick(n - done);
            done = n;
          },
        });
        for (const g of groups) for (const [role, s] of scores.members.get(g.id)!) put(g, role, s);
        for (const [id, mean] of scores.meanInputs) {
          const name = `${id}/mean_input`;
          tensors.set(name, { shape: [mean.length], data: Float32Array.from(mean) });
          meanInputs[id] = name;
        }
      } else if (importance === 'random') {
        // LLM-Pruner RandomImportance: uniform [0, 1) per channel of the root member only.
        const random = mulberry32(deriveSeed(ctx.seed));
        for (const g of groups) put(g, g.members[0]!.role, randomChannelScores(g.members[0]!.channels, random));
      } else {
        const criterion: Criterion = criterionOf(importance, taylor);
        if (importance === 'taylor') {
          const batch = await calibrate();
          grads = await taylorGradients(ctx, resident.model, batch.ids, batch.samples, batch.seqLen, memberParams(groups), criteria[criterion].needsFisher);
          loss = grads.loss;
          ctx.progress.note(`calibration loss ${loss.toFixed(4)}`);
        }
        for (const g of groups) {
          for (const m of g.members) {
            if (g.layerIds) {
              const per: number[] = [];
              for (let u = 0; u < g.layerIds.length; u++) per.push((await memberScores(criterion, resident.model, memberParam(g, m, u), null, grads))[0]!);
              put(g, m.role, Float64Array.from(per));
            } else {
              put(g, m.role, await memberScores(criterion, resident.model, m.param, m.axis, grads));
            }
          }
        }
      }
    } finally {
      grads?.dispose();
      lease.release();
    }

    const tmp = join(ctx.outDir, `.${SCORES_TENSORS}.tmp-${process.pid}`);
    await writeSafetensors(tmp, tensors, { format: 'lopper.scores/1' });
    await rename(tmp, join(ctx.outDir, SCORES_TENSORS));
    const file: ScoresFile = {
      format: 'lopper.scores/1', model: gf.model, mode: gf.mode, importance, taylor: importance === 'taylor' ? taylor : null,
      ...(importance === 'flap' ? { flap, mean_inputs: meanInputs } : {}),
      calibration: calibrationJson, loss, groups: gf.groups, tensors: index,
    };
    await writeJsonAtomic(ctx.outDir, SCORES_FILE, file);
    return { summary: { importance, ...(importance === 'taylor' ? { taylor, loss } : {}), ...(importance === 'flap' ? { flap } : {}), groups: groups.length } };
  },
};
export default stage;
