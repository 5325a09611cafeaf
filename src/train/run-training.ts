// What lora-finetune and train share around the trainer: step count, progress, train.jsonl, and where checkpoints
// live. Checkpoints must survive an interrupted stage, whose output directory the runner throws away, so they go to
// `<store>/checkpoints/<cache key>/` (the runner's temp dirs are `<store>/tmp/<key>.<pid>.<rand>`); a StageContext
// with its own `checkpointDir` wins.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { StageContext } from '../stages/types.js';
import type { TrainExample } from '../data/packing.js';
import type { TrainSettings } from './options.js';
import { stepsForEpochs, train, type TrainRecord, type TrainResult, type TrainTask } from './trainer.js';

export function checkpointDirOf(ctx: StageContext): string | undefined {
  const own = (ctx as StageContext & { checkpointDir?: unknown }).checkpointDir;
  if (typeof own === 'string') return own;
  const parent = path.dirname(ctx.outDir);
  const key = path.basename(ctx.outDir).split('.')[0] ?? '';
  if (path.basename(parent) !== 'tmp' || !/^[0-9a-f]{8,}$/.test(key)) return undefined;
  return path.join(path.dirname(parent), 'checkpoints', key);
}

export function totalSteps(settings: TrainSettings, trainExamples: number): number {
  const perStep = Math.max(1, Math.floor(settings.batchSize / settings.microBatchSize)) * settings.microBatchSize;
  return settings.maxSteps ?? stepsForEpochs(settings.epochs!, trainExamples, perStep);
}

export async function runTraining(
  ctx: StageContext, settings: TrainSettings, task: TrainTask, trainSet: TrainExample[], valSet: TrainExample[], padId: number,
  decays: (name: string) => boolean,
): Promise<TrainResult & { totalSteps: number }> {
  const steps = totalSteps(settings, trainSet.length);
  ctx.progress.start('steps', steps);
  let lastLoss = Number.NaN;
  const checkpointDir = checkpointDirOf(ctx);
  const result = await train(task, trainSet, valSet, {
    name: ctx.id,
    totalSteps: steps,
    batchSize: settings.batchSize,
    microBatchSize: settings.microBatchSize,
    schedule: { kind: settings.schedule, lr: settings.lr, warmupSteps: settings.warmupSteps, totalSteps: steps },
    adam: { betas: settings.betas, eps: settings.eps, weightDecay: settings.weightDecay, decays },
    ...(settings.gradClip !== null ? { gradClip: settings.gradClip } : {}),
    ...(settings.evalEvery !== null ? { evalEvery: settings.evalEvery } : {}),
    ...(settings.saveEvery !== null ? { saveEvery: settings.saveEvery } : {}),
    seed: ctx.seed,
    padId,
    ...(checkpointDir ? { checkpointDir } : {}),
  }, {
    signal: ctx.signal,
    log: (line) => ctx.log(line),
    onRecord: (record: TrainRecord) => {
      if ('loss' in record) {
        lastLoss = record.loss;
        ctx.progress.tick();
        ctx.progress.note(`loss ${record.loss.toFixed(3)} lr ${record.lr.toExponential(2)} ${record.tokens_per_second} tok/s`);
      } else {
        ctx.progress.note(`${Number.isNaN(lastLoss) ? '' : `loss ${lastLoss.toFixed(3)} `}val ${record.val_loss.toFixed(3)}`);
      }
    },
  });
  await writeFile(path.join(ctx.outDir, 'train.jsonl'), result.log.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return { ...result, totalSteps: steps };
}

/** HF Trainer's decay rule: every weight but biases and norm weights. */
export function decaysExceptNormsAndBiases(name: string): boolean {
  return !name.endsWith('.bias') && !/norm\.weight$/.test(name);
}
