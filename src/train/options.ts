// The `train:` block of lora-finetune and train stages (docs/recipe-fields.md), with defaults, checked.
import { LopperError } from '../errors/lopper-error.js';
import type { ScheduleKind } from './schedule.js';

export interface TrainSettings {
  epochs: number | null;
  maxSteps: number | null;
  lr: number;
  batchSize: number;
  microBatchSize: number;
  cutoffLen: number;
  warmupSteps: number;
  schedule: ScheduleKind;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  gradClip: number | null;
  valSize: number;
  evalEvery: number | null;
  saveEvery: number | null;
  trainOnInputs: boolean;
  promptTemplate: 'alpaca';
}

function bad(stage: string, message: string): never {
  throw new LopperError('LP6001', `stage ${stage}: train.${message}`);
}

function num(stage: string, raw: Record<string, unknown>, key: string, fallback: number | null, check: (x: number) => boolean, what: string): number | null {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) bad(stage, `${key} must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}

const positiveInt = (x: number) => Number.isInteger(x) && x >= 1;

export function readTrainSettings(stage: string, value: unknown): TrainSettings {
  const raw = (value ?? {}) as Record<string, unknown>;
  const epochs = num(stage, raw, 'epochs', null, (x) => x > 0, 'a positive number');
  const maxSteps = num(stage, raw, 'max_steps', null, positiveInt, 'a positive integer');
  if (epochs === null && maxSteps === null) {
    throw new LopperError('LP6001', `stage ${stage}: train needs \`epochs\` or \`max_steps\``, { hint: 'e.g. train: { epochs: 2 } or train: { max_steps: 200 }' });
  }
  const batchSize = num(stage, raw, 'batch_size', 64, positiveInt, 'a positive integer')!;
  const microBatchSize = num(stage, raw, 'micro_batch_size', 4, positiveInt, 'a positive integer')!;
  if (microBatchSize > batchSize) bad(stage, `micro_batch_size (${microBatchSize}) must not exceed batch_size (${batchSize})`);
  const betasRaw = raw.betas ?? [0.9, 0.999];
  if (!Array.isArray(betasRaw) || betasRaw.length !== 2 || !betasRaw.every((b) => typeof b === 'number' && b >= 0 && b < 1)) {
    bad(stage, `betas must be two numbers in [0, 1), got ${JSON.stringify(betasRaw)}`);
  }
  const schedule = (raw.schedule ?? 'linear') as ScheduleKind;
  if (!['linear', 'cosine', 'constant'].includes(schedule)) bad(stage, `schedule must be linear, cosine or constant, got ${JSON.stringify(raw.schedule)}`);
  const prompt = raw.prompt_template ?? 'alpaca';
  if (prompt !== 'alpaca') bad(stage, `prompt_template must be "alpaca", got ${JSON.stringify(prompt)}`);
  return {
    epochs, maxSteps,
    lr: num(stage, raw, 'lr', 1e-4, (x) => x > 0, 'a positive number')!,
    batchSize, microBatchSize,
    cutoffLen: num(stage, raw, 'cutoff_len', 256, (x) => Number.isInteger(x) && x >= 2, 'an integer ≥ 2')!,
    warmupSteps: num(stage, raw, 'warmup_steps', 100, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer')!,
    schedule,
    weightDecay: num(stage, raw, 'weight_decay', 0, (x) => x >= 0, 'a non-negative number')!,
    betas: betasRaw as [number, number],
    eps: num(stage, raw, 'eps', 1e-8, (x) => x > 0, 'a positive number')!,
    gradClip: num(stage, raw, 'grad_clip', null, (x) => x > 0, 'a positive number'),
    valSize: num(stage, raw, 'val_size', 0, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer')!,
    evalEvery: num(stage, raw, 'eval_every', null, positiveInt, 'a positive integer'),
    saveEvery: num(stage, raw, 'save_every', null, positiveInt, 'a positive integer'),
    trainOnInputs: raw.train_on_inputs === true,
    promptTemplate: 'alpaca',
  };
}
