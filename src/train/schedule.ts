// Learning-rate schedules, as Hugging Face transformers defines them (optimization.py). `step` is the number of
// optimizer steps already taken (0 for the first update), which is how HF Trainer calls them: with warm-up the very
// first update uses lr 0.

export type ScheduleKind = 'linear' | 'cosine' | 'constant';

export interface ScheduleSpec {
  kind: ScheduleKind;
  lr: number;
  warmupSteps: number;
  totalSteps: number;
}

/** `get_linear_schedule_with_warmup`, `get_cosine_schedule_with_warmup` (num_cycles 0.5),
 * `get_constant_schedule_with_warmup`: the multiplier of the base lr. */
export function lrMultiplier(kind: ScheduleKind, step: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  if (kind === 'constant') return 1;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  if (kind === 'linear') return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * progress)));
}

export function learningRate(spec: ScheduleSpec, step: number): number {
  return spec.lr * lrMultiplier(spec.kind, step, spec.warmupSteps, spec.totalSteps);
}
