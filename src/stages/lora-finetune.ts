// lora-finetune: LLM-Pruner's recovery step (post_training.py, from alpaca-lora). LoRA adapters on the chosen
// projections of a frozen model, AdamW with warm-up, gradient accumulation, validation with best-checkpoint
// selection; writes model/ (adapters merged: W + (alpha/r)·B·A), adapter/ (PEFT layout) and train.jsonl.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LopperError } from '../errors/lopper-error.js';
import { requireTokenizer } from '../model/index.js';
import type { ResidentModel } from '../model/residency.js';
import { LORA_TARGETS, LoraAdapters, type LoraOptions, type LoraTarget } from '../lora/adapters.js';
import { mergeOnDevice } from '../lora/merge.js';
import { writePeftAdapter } from '../lora/peft.js';
import { datasetExamples, splitValidation } from '../train/examples.js';
import { readTrainSettings, type TrainSettings } from '../train/options.js';
import { runTraining } from '../train/run-training.js';
import type { TrainTask } from '../train/trainer.js';
import { acquireModel } from './model-ref.js';
import { outputDtype, writeResidentModel } from './model-output.js';
import type { StageContext, StageModule } from './types.js';

export function readLoraOptions(stage: string, value: unknown): LoraOptions {
  const raw = (value ?? {}) as Record<string, unknown>;
  const r = raw.r ?? 8;
  const alpha = raw.alpha ?? 16;
  const dropout = raw.dropout ?? 0.05;
  const targets = raw.targets ?? [...LORA_TARGETS];
  const bad = (message: string): never => { throw new LopperError('LP6004', `stage ${stage}: lora.${message}`); };
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) bad(`r must be a positive integer, got ${JSON.stringify(r)}`);
  if (typeof alpha !== 'number' || !(alpha > 0)) bad(`alpha must be a positive number, got ${JSON.stringify(alpha)}`);
  if (typeof dropout !== 'number' || dropout < 0 || dropout >= 1) bad(`dropout must be in [0, 1), got ${JSON.stringify(dropout)}`);
  if (!Array.isArray(targets) || targets.length === 0) bad('targets must be a non-empty list');
  for (const t of targets as unknown[]) {
    if (!LORA_TARGETS.includes(t as LoraTarget)) bad(`targets: unknown projection ${JSON.stringify(t)} (one of ${LORA_TARGETS.join(', ')})`);
  }
  return { r: r as number, alpha: alpha as number, dropout: dropout as number, targets: [...new Set(targets as LoraTarget[])] };
}

async function run(ctx: StageContext) {
  const p = ctx.params;
  const settings = readTrainSettings(ctx.id, p.train);
  const loraOptions = readLoraOptions(ctx.id, p.lora);
  outputDtype(ctx, 'float32'); // a bad `dtype:` fails before the model is loaded
  const lease = await acquireModel(ctx, String(p.model));
  try {
    return await tune(ctx, lease.resident, settings, loraOptions);
  } finally {
    lease.release();
  }
}

async function tune(ctx: StageContext, loaded: ResidentModel, settings: TrainSettings, loraOptions: LoraOptions) {
  const p = ctx.params;
  const tokenizer = requireTokenizer(loaded);
  const exampleOptions = { cutoffLen: settings.cutoffLen, trainOnInputs: settings.trainOnInputs };
  const all = await datasetExamples(ctx.dataset(String(p.dataset)), tokenizer, exampleOptions);
  const { train: trainSet, val: split } = p.val_dataset
    ? { train: all, val: await datasetExamples(ctx.dataset(String(p.val_dataset)), tokenizer, exampleOptions) }
    : splitValidation(all, Math.min(settings.valSize, Math.max(0, all.length - 1)), ctx.seed);
  if (trainSet.length === 0) {
    throw new LopperError('LP6003', `stage ${ctx.id}: dataset ${String(p.dataset)} yields no training examples at cutoff_len ${settings.cutoffLen}`);
  }
  ctx.log(`${trainSet.length} training / ${split.length} validation examples`);

  const model = loaded.model;
  const adapters = LoraAdapters.init(loaded.config, loraOptions, ctx.seed);
  try {
    const task: TrainTask = {
      trainable: adapters.variables,
      loss: (batch, dropoutSeed) => tf.tidy(() => {
        const ids = tf.tensor2d(batch.ids, [batch.rows, batch.seqLen], 'int32');
        const mask = tf.tensor2d(batch.targets, [batch.rows, batch.seqLen], 'float32');
        return model.loss(ids, { mask, linear: adapters.hook(dropoutSeed), training: dropoutSeed !== null });
      }),
    };
    const result = await runTraining(ctx, settings, task, trainSet, split, 0, () => true);
    const adapterWeights = await adapters.weights();
    await writePeftAdapter(path.join(ctx.outDir, 'adapter'), loraOptions, adapterWeights, null);
    const dtype = outputDtype(ctx, loaded.dtype);
    const merged = mergeOnDevice(model, adapters.modules, adapters.variables, adapters.scale);
    // Last: once the write is in flight the stage returns, and the executor waits for it before committing.
    const pending = writeResidentModel(ctx, { ...loaded, model: merged, dtype }, path.join(ctx.outDir, 'model'));
    const firstVal = result.log.find((r) => 'val_loss' in r && r.step === 0) as { val_loss: number } | undefined;
    return {
      pending,
      summary: {
        steps: result.totalSteps, final_loss: result.finalLoss,
        val_loss_before: firstVal?.val_loss ?? null, best_val_loss: result.bestValLoss, best_step: result.bestStep,
        adapter_params: [...adapterWeights.values()].reduce((a, t) => a + t.data.length, 0),
        ...(result.resumedFrom !== null ? { resumed_from: result.resumedFrom } : {}),
      },
    };
  } finally {
    adapters.dispose();
  }
}

// 2: dropout masks from backend/dropout.ts's counter hash (on the GPU) instead of tf.dropout; merged on the device in
// float32; model/ in the base checkpoint's dtype unless `dtype:` says otherwise.
const stage: StageModule = { kind: 'lora-finetune', version: '2', outputKind: 'model', run, readsResidentModels: true };
export default stage;
