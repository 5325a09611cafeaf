// AdamW with decoupled weight decay, step for step as torch.optim.AdamW (amsgrad off, maximize off):
//   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
//   p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)
// Moments live on the backend as tf.Variables; `state()`/`loadState()` move them to and from host memory for
// checkpoints, so a resumed run continues bit for bit.
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '../model/types.js';
import { fusedAdamWActive, fusedAdamWStep } from '../backend/kernels/fused-adamw.js';

export interface AdamWOptions {
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Names that get weight decay (HF Trainer: every weight except biases and norm weights). */
  decays?: (name: string) => boolean;
}

export class AdamW {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  /** Number of updates taken so far (torch's per-parameter `step`, shared here: every parameter updates each step). */
  stepCount = 0;

  constructor(private readonly params: Map<string, tf.Variable>, private readonly options: AdamWOptions) {
    for (const [name, p] of params) {
      this.m.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false, `adamw_m/${name}/${p.id}`)));
      this.v.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false, `adamw_v/${name}/${p.id}`)));
    }
  }

  /** One update with gradients by parameter name (missing names are treated as zero gradients). */
  step(grads: Map<string, tf.Tensor>, lr: number): void {
    this.stepCount += 1;
    const [b1, b2] = this.options.betas;
    const bc1 = 1 - b1 ** this.stepCount;
    const bc2 = 1 - b2 ** this.stepCount;
    const stepSize = lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    // One dispatch per parameter instead of ~12 (kernels/fused-adamw.ts); elsewhere the composite ops below.
    const fused = fusedAdamWActive();
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const decay = this.options.weightDecay !== 0 && (this.options.decays?.(name) ?? true);
      if (fused && fusedAdamWStep(p, g, m, v, { b1, b2, eps: this.options.eps, lr, weightDecay: decay ? this.options.weightDecay : 0, stepSize, sqrtBc2 })) continue;
      tf.tidy(() => {
        const decayed = decay ? tf.mul(p, 1 - lr * this.options.weightDecay) : p;
        const mNew = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(vNew), sqrtBc2), this.options.eps);
        m.assign(mNew);
        v.assign(vNew);
        p.assign(tf.sub(decayed, tf.mul(tf.div(mNew, denom), stepSize)));
      });
    }
  }

  async state(): Promise<{ stepCount: number; tensors: Map<string, HostTensor> }> {
    const tensors = new Map<string, HostTensor>();
    for (const [name, t] of this.m) tensors.set(`m/${name}`, { shape: t.shape, data: (await t.data()) as Float32Array });
    for (const [name, t] of this.v) tensors.set(`v/${name}`, { shape: t.shape, data: (await t.data()) as Float32Array });
    return { stepCount: this.stepCount, tensors };
  }

  loadState(stepCount: number, tensors: Map<string, HostTensor>): void {
    this.stepCount = stepCount;
    for (const [kind, map] of [['m', this.m], ['v', this.v]] as const) {
      for (const [name, variable] of map) {
        const t = tensors.get(`${kind}/${name}`);
        if (!t) throw new Error(`optimizer state lacks ${kind}/${name}`);
        tf.tidy(() => variable.assign(tf.tensor(t.data, t.shape, 'float32')));
      }
    }
  }

  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** torch.nn.utils.clip_grad_norm_: scales every gradient by min(1, maxNorm / (‖g‖₂ + 1e-6)) over all of them
 * together. Returns the new gradients (old ones disposed when scaled) and the norm before clipping. */
export async function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number): Promise<{ grads: Map<string, tf.Tensor>; norm: number }> {
  const norm = await globalNorm(grads);
  const coef = maxNorm / (norm + 1e-6);
  if (coef >= 1) return { grads, norm };
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) { out.set(name, tf.mul(g, coef)); g.dispose(); }
  return { grads: out, norm };
}

export async function globalNorm(grads: Map<string, tf.Tensor>): Promise<number> {
  // A chain of adds, not addN: WebGPU's AddN binds every input at once and fails past the per-stage binding limit.
  const total = tf.tidy(() => [...grads.values()].reduce<tf.Tensor>((acc, g) => tf.add(acc, tf.sum(tf.square(g))), tf.scalar(0)));
  const sum = (await total.data())[0]!;
  total.dispose();
  return Math.sqrt(sum);
}
