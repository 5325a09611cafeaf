// The training loop shared by `lora-finetune` and `train`. It knows nothing about models: a `TrainTask` gives the
// variables to update and a loss over a micro-batch. Per optimizer step it takes `batchSize` examples from a stream
// of epochs (each a seeded permutation of the training set, so step s always sees the same examples), splits them
// into micro-batches whose gradients are averaged (HF gradient accumulation: each micro loss ÷ accumulation steps),
// optionally clips the global norm, and applies AdamW at the scheduled learning rate. Validation runs every
// `evalEvery` steps and at the end; the best parameters (lowest validation loss) are restored at the end, as HF
// `load_best_model_at_end` does. Checkpoints every `saveEvery` steps and on cancellation make a rerun resume
// where it stopped, with results identical to an uninterrupted run.
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { boundGpuPool } from '../backend/pool.js';
import { LopperError, StageCancelled } from '../errors/lopper-error.js';
import type { HostTensor } from '../model/types.js';
import { collate, type MicroBatch, type TrainExample } from '../data/packing.js';
import { AdamW, clipGradNorm, type AdamWOptions } from './adamw.js';
import { latestCheckpoint, saveCheckpoint } from './checkpoint.js';
import { deriveSeed, seededPermutation } from '../seeded-random.js';
import { learningRate, type ScheduleSpec } from './schedule.js';

export interface TrainTask {
  /** The variables the optimizer updates, by parameter name. Nothing else changes. */
  trainable: Map<string, tf.Variable>;
  /** Mean cross-entropy over the micro-batch's target positions. `dropoutSeed` is set in training mode only. */
  loss(batch: MicroBatch, dropoutSeed: number | null): tf.Scalar;
}

export interface TrainerConfig {
  /** Name used in cancellation errors (the stage id). */
  name: string;
  totalSteps: number;
  batchSize: number;
  microBatchSize: number;
  schedule: ScheduleSpec;
  adam: AdamWOptions;
  gradClip?: number;
  evalEvery?: number;
  saveEvery?: number;
  seed: number;
  padId: number;
  /** Where checkpoints go; absent = no checkpoints, no resume. */
  checkpointDir?: string;
}

export interface TrainHooks {
  signal?: AbortSignal;
  /** Called after every optimizer step and every validation with the record appended to the log. */
  onRecord?(record: TrainRecord, totalSteps: number): void;
  log?(line: string): void;
}

export type TrainRecord =
  | { step: number; loss: number; lr: number; tokens_per_second: number; grad_norm?: number }
  | { step: number; val_loss: number };

export interface TrainResult {
  log: TrainRecord[];
  finalLoss: number;
  bestValLoss: number | null;
  bestStep: number | null;
  resumedFrom: number | null;
}

/** Optimizer steps for `epochs` passes over `examples` records at `batchSize` per step (at least one). */
export function stepsForEpochs(epochs: number, examples: number, batchSize: number): number {
  return Math.max(1, Math.ceil((epochs * examples) / batchSize));
}

/** The training-set indices of optimizer step `step` (0-based): positions step·B … step·B+B−1 of the epoch stream. */
export function stepIndices(step: number, batchSize: number, n: number, seed: number, cache = new Map<number, number[]>()): number[] {
  const out: number[] = [];
  for (let pos = step * batchSize; pos < (step + 1) * batchSize; pos++) {
    const epoch = Math.floor(pos / n);
    let order = cache.get(epoch);
    if (!order) { order = seededPermutation(n, deriveSeed(seed, epoch)); cache.clear(); cache.set(epoch, order); }
    out.push(order[pos % n]!);
  }
  return out;
}

/** Token-weighted mean loss over `examples` (no dropout). */
export async function evaluateLoss(task: TrainTask, examples: readonly TrainExample[], microBatchSize: number, padId: number): Promise<number> {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < examples.length; i += microBatchSize) {
    const batch = collate(examples.slice(i, i + microBatchSize), padId);
    if (batch.targetCount === 0) continue;
    const lossTensor = task.loss(batch, null);
    const loss = (await lossTensor.data())[0]!; // data(), not dataSync(): WebGPU in Node cannot read back synchronously
    lossTensor.dispose();
    sum += loss * batch.targetCount;
    count += batch.targetCount;
  }
  return count === 0 ? Number.NaN : sum / count;
}

export async function train(
  task: TrainTask, trainSet: readonly TrainExample[], valSet: readonly TrainExample[], config: TrainerConfig, hooks: TrainHooks = {},
): Promise<TrainResult> {
  if (trainSet.length === 0) throw new Error('no training examples');
  const accumulation = Math.max(1, Math.floor(config.batchSize / config.microBatchSize));
  const examplesPerStep = accumulation * Math.min(config.microBatchSize, config.batchSize);
  const micro = Math.min(config.microBatchSize, config.batchSize);
  const names = [...task.trainable.keys()];
  const varNameToParam = new Map(names.map((n) => [task.trainable.get(n)!.name, n]));
  const varList = names.map((n) => task.trainable.get(n)!);
  const optimizer = new AdamW(task.trainable, config.adam);
  const fingerprint = runFingerprint(config, trainSet, valSet, names);

  const log: TrainRecord[] = [];
  let startStep = 0;
  let bestValLoss: number | null = null;
  let bestStep: number | null = null;
  let best: Map<string, HostTensor> | null = null;
  let resumedFrom: number | null = null;

  if (config.checkpointDir) {
    const checkpoint = await latestCheckpoint(config.checkpointDir, fingerprint);
    if (checkpoint) {
      const { state, tensors } = checkpoint;
      for (const [name, v] of task.trainable) {
        const t = tensors.get(`param/${name}`);
        if (!t) throw new Error(`checkpoint lacks param/${name}`);
        assignHost(v, t);
      }
      optimizer.loadState(state.optimizerSteps, tensors);
      startStep = state.step;
      bestValLoss = state.bestValLoss;
      bestStep = state.bestStep;
      if (bestStep !== null) best = new Map(names.map((n) => [n, tensors.get(`best/${n}`)!]));
      log.push(...(state.log as TrainRecord[]));
      resumedFrom = state.step;
      hooks.log?.(`resuming from checkpoint at step ${state.step}/${config.totalSteps}`);
    }
  }

  const snapshot = async (): Promise<Map<string, HostTensor>> => {
    const out = new Map<string, HostTensor>();
    for (const [name, v] of task.trainable) out.set(name, { shape: v.shape.slice(), data: (await v.data()) as Float32Array });
    return out;
  };
  const checkpoint = async (step: number): Promise<void> => {
    if (!config.checkpointDir) return;
    const opt = await optimizer.state();
    const tensors = new Map<string, HostTensor>();
    for (const [name, t] of await snapshot()) tensors.set(`param/${name}`, t);
    for (const [name, t] of opt.tensors) tensors.set(name, t);
    if (best) for (const [name, t] of best) tensors.set(`best/${name}`, t);
    await saveCheckpoint(config.checkpointDir, {
      state: { step, optimizerSteps: opt.stepCount, bestValLoss, bestStep, log, fingerprint }, tensors,
    });
  };
  const validate = async (step: number): Promise<void> => {
    if (valSet.length === 0) return;
    const valLoss = await evaluateLoss(task, valSet, micro, config.padId);
    const record: TrainRecord = { step, val_loss: valLoss };
    log.push(record);
    hooks.onRecord?.(record, config.totalSteps);
    if (bestValLoss === null || valLoss < bestValLoss) {
      bestValLoss = valLoss;
      bestStep = step;
      best = await snapshot();
    }
  };

  const orderCache = new Map<number, number[]>();
  let finalLoss = Number.NaN;
  try {
    // Validation before the first update: the reference point (and a candidate for the best checkpoint).
    if (startStep === 0) await validate(0);
    for (let step = startStep; step < config.totalSteps; step++) {
      // Let the event loop run (SIGINT, watch-mode events): on cpu/wasm, tensor reads resolve as microtasks only,
      // so without this an abort would not be seen until the next file write.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await boundGpuPool();
      if (hooks.signal?.aborted) {
        await checkpoint(step);
        throw new StageCancelled(config.name);
      }
      const started = performance.now();
      const indices = stepIndices(step, examplesPerStep, trainSet.length, config.seed, orderCache);
      let grads = new Map<string, tf.Tensor>();
      let lossSum = 0;
      let tokens = 0;
      for (let k = 0; k < accumulation; k++) {
        const batch = collate(indices.slice(k * micro, (k + 1) * micro).map((i) => trainSet[i]!), config.padId);
        tokens += batch.tokenCount;
        if (batch.targetCount === 0) continue;
        const dropoutSeed = deriveSeed(config.seed, 0x5eed, step, k);
        const { value, grads: g } = tf.variableGrads(() => tf.div(task.loss(batch, dropoutSeed), accumulation) as tf.Scalar, varList);
        lossSum += (await value.data())[0]! * accumulation;
        value.dispose();
        for (const [varName, grad] of Object.entries(g)) {
          const name = varNameToParam.get(varName)!;
          const prev = grads.get(name);
          if (prev) { grads.set(name, tf.add(prev, grad)); prev.dispose(); grad.dispose(); } else grads.set(name, grad);
        }
      }
      let gradNorm: number | undefined;
      if (config.gradClip !== undefined) ({ grads, norm: gradNorm } = await clipGradNorm(grads, config.gradClip));
      const lr = learningRate(config.schedule, step);
      optimizer.step(grads, lr);
      for (const g of grads.values()) g.dispose();
      finalLoss = lossSum / accumulation;
      if (!Number.isFinite(finalLoss)) {
        throw new LopperError('LP6007', `${config.name}: the training loss became ${finalLoss} at step ${step + 1}`,
          { hint: 'Lower train.lr, set train.grad_clip, or add warm-up steps.' });
      }
      const seconds = (performance.now() - started) / 1000;
      const record: TrainRecord = { step: step + 1, loss: finalLoss, lr, tokens_per_second: Math.round(tokens / seconds) };
      if (gradNorm !== undefined) record.grad_norm = gradNorm;
      log.push(record);
      hooks.onRecord?.(record, config.totalSteps);
      const done = step + 1;
      if ((config.evalEvery && done % config.evalEvery === 0) || done === config.totalSteps) await validate(done);
      if (config.saveEvery && done % config.saveEvery === 0 && done < config.totalSteps) await checkpoint(done);
    }
    if (Number.isNaN(finalLoss)) {
      const last = [...log].reverse().find((r): r is Extract<TrainRecord, { loss: number }> => 'loss' in r);
      finalLoss = last?.loss ?? Number.NaN;
    }
    if (best && bestStep !== config.totalSteps) {
      const chosen = best as Map<string, HostTensor>;
      for (const [name, v] of task.trainable) assignHost(v, chosen.get(name)!);
      hooks.log?.(`restored the best checkpoint (step ${bestStep}, validation loss ${bestValLoss!.toFixed(4)})`);
    }
  } finally {
    optimizer.dispose();
  }
  if (config.checkpointDir) await rm(config.checkpointDir, { recursive: true, force: true });
  return { log, finalLoss, bestValLoss, bestStep, resumedFrom };
}

/** v ← host tensor t, without leaving the upload behind. */
export function assignHost(v: tf.Variable, t: HostTensor): void {
  tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, 'float32')));
}

/** Identifies a run: a checkpoint from a run with other settings, data or variables is never resumed. */
function runFingerprint(config: TrainerConfig, trainSet: readonly TrainExample[], valSet: readonly TrainExample[], names: string[]): string {
  const h = createHash('sha256');
  const { signal: _s, checkpointDir: _d, name: _n, ...rest } = config as TrainerConfig & { signal?: unknown };
  h.update(JSON.stringify({ ...rest, adam: { ...config.adam, decays: undefined }, names }));
  for (const set of [trainSet, valSet]) {
    h.update(`|${set.length}|`);
    for (const e of set) { h.update(Int32Array.from(e.ids)); h.update(e.targets); }
  }
  return h.digest('hex');
}
