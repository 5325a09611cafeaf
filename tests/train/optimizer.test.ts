// AdamW, gradient clipping and schedules against torch.optim.AdamW / transformers (fixtures/adamw-reference.json,
// written by fixtures/make-reference.py with torch 2.11 / transformers 5.17, float64).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { AdamW, clipGradNorm } from '../../src/train/adamw.js';
import { learningRate, lrMultiplier } from '../../src/train/schedule.js';

const ref = JSON.parse(readFileSync(new URL('./fixtures/adamw-reference.json', import.meta.url), 'utf8'));

test('linear and cosine warm-up schedules equal transformers get_*_schedule_with_warmup', () => {
  ref.linear_3_12.forEach((expected: number, step: number) => assert.ok(Math.abs(lrMultiplier('linear', step, 3, 12) - expected) < 1e-12, `linear step ${step}`));
  ref.cosine_3_12.forEach((expected: number, step: number) => assert.ok(Math.abs(lrMultiplier('cosine', step, 3, 12) - expected) < 1e-12, `cosine step ${step}`));
  assert.equal(learningRate({ kind: 'constant', lr: 2, warmupSteps: 2, totalSteps: 9 }, 1), 1);
  assert.equal(learningRate({ kind: 'constant', lr: 2, warmupSteps: 2, totalSteps: 9 }, 7), 2);
});

test('AdamW + clip_grad_norm_ + linear warm-up follow torch step for step', async () => {
  await tf.setBackend('cpu');
  const a = ref.adamw;
  const p = tf.variable(tf.tensor2d(a.init), true, 'adamw-test-p');
  const params = new Map([['w', p]]);
  const opt = new AdamW(params, { betas: a.betas, eps: a.eps, weightDecay: a.weight_decay });
  const before = tf.memory().numTensors;
  for (let step = 0; step < a.steps.length; step++) {
    const s = a.steps[step];
    const lr = learningRate({ kind: 'linear', lr: a.lr, warmupSteps: a.warmup, totalSteps: a.total }, step);
    assert.ok(Math.abs(lr - s.lr) < 1e-12, `lr at step ${step}`);
    const { grads, norm } = await clipGradNorm(new Map([['w', tf.tensor2d(s.grad)]]), a.clip);
    assert.ok(Math.abs(norm - s.norm) < 1e-5 * s.norm, `norm at step ${step}: ${norm} vs ${s.norm}`);
    opt.step(grads, lr);
    for (const g of grads.values()) g.dispose();
    const got = await p.data();
    s.param.flat().forEach((x: number, i: number) => assert.ok(Math.abs(got[i]! - x) < 2e-6, `param ${i} step ${step}: ${got[i]} vs ${x}`));
  }
  assert.equal(tf.memory().numTensors, before, 'no tensors leak per step');
  const state = await opt.state();
  const other = new AdamW(new Map([['w', tf.variable(tf.zeros([3, 4]), true, 'adamw-test-q')]]), { betas: a.betas, eps: a.eps, weightDecay: 0 });
  other.loadState(state.stepCount, state.tensors);
  assert.deepEqual(await (await other.state()).tensors.get('m/w')!.data, state.tensors.get('m/w')!.data);
  opt.dispose(); other.dispose(); p.dispose();
});
