// LoRA adapters on a small random LLaMA (heterogeneous layers): PEFT initialisation, gradients reach only the
// adapters, base weights stay bit-identical through training, dropout is seeded, and merge = hook.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, initWeights } from '../../src/model/index.js';
import type { LlamaConfig } from '../../src/model/types.js';
import { LoraAdapters, loraModules } from '../../src/lora/adapters.js';
import { mergeAdapters } from '../../src/lora/merge.js';
import { collate } from '../../src/data/packing.js';
import { train, type TrainTask } from '../../src/train/trainer.js';
import { maxAbsDiff, useBackend } from './helpers.js';

const config: LlamaConfig = {
  hiddenSize: 16, vocabSize: 40, headDim: 4, numHiddenLayers: 3,
  layers: [
    { numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 24 },
    { numAttentionHeads: 2, numKeyValueHeads: 1, intermediateSize: 0 },
    { numAttentionHeads: 0, numKeyValueHeads: 0, intermediateSize: 8 },
  ],
  rmsNormEps: 1e-5, ropeTheta: 10000, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
  attentionBias: false, mlpBias: false, bosTokenId: 1, eosTokenId: 2,
};
const options = { r: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj'] as const };

test('modules skip zero-width projections; init is PEFT (A ~ U(±1/√in), B = 0)', async () => {
  await useBackend();
  const mods = loraModules(config, [...options.targets]);
  assert.deepEqual(mods.map((m) => m.name), [
    'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.0.self_attn.o_proj',
    'model.layers.0.mlp.gate_proj', 'model.layers.0.mlp.down_proj',
    'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj', 'model.layers.1.self_attn.o_proj',
    'model.layers.2.mlp.gate_proj', 'model.layers.2.mlp.down_proj',
  ]);
  assert.deepEqual(mods.find((m) => m.name === 'model.layers.0.self_attn.o_proj'), { name: 'model.layers.0.self_attn.o_proj', inFeatures: 16, outFeatures: 16 });
  const adapters = LoraAdapters.init(config, { ...options, targets: [...options.targets] }, 42);
  const w = await adapters.weights();
  const a = w.get('model.layers.2.mlp.down_proj.lora_A.weight')!;
  assert.deepEqual(a.shape, [4, 8]);
  assert.ok(a.data.every((x) => Math.abs(x) <= 1 / Math.sqrt(8)) && a.data.some((x) => x !== 0));
  assert.ok(w.get('model.layers.2.mlp.down_proj.lora_B.weight')!.data.every((x) => x === 0));
  assert.deepEqual(await LoraAdapters.init(config, { ...options, targets: [...options.targets] }, 42).weights(), w, 'seeded');
  adapters.dispose();
});

test('training moves only the adapters; base bit-identical; merged weights reproduce the hook', async () => {
  await useBackend();
  const base = initWeights(config, 3);
  const model = LlamaModel.fromWeights(config, base, { trainable: false });
  const adapters = LoraAdapters.init(config, { ...options, targets: [...options.targets] }, 5);
  const examples = Array.from({ length: 16 }, (_, i) => ({ ids: Array.from({ length: 12 }, (_, t) => 3 + ((i * 7 + t * (i % 3 + 1)) % 37)), targets: new Uint8Array(12).fill(1) }));
  // Gradients of the LoRA loss with respect to every parameter: only adapter variables get one.
  const batch = collate(examples.slice(0, 4));
  const ids = tf.tensor2d(batch.ids, [batch.rows, batch.seqLen], 'int32');
  const all = [...model.params.values(), ...adapters.variables.values()];
  const { value, grads } = tf.variableGrads(() => model.loss(ids, { linear: adapters.hook(1) }), adapters.variables.size ? [...adapters.variables.values()] : all);
  assert.equal(Object.keys(grads).length, adapters.variables.size);
  for (const v of model.params.values()) assert.ok(!(v.name in grads));
  assert.ok(!model.params.values().next().value!.trainable, 'base variables are frozen (trainable: false)');
  tf.dispose([value, ...Object.values(grads)]);
  // Dropout masks are a function of the seed.
  const l1 = model.loss(ids, { linear: adapters.hook(11) }), l2 = model.loss(ids, { linear: adapters.hook(11) });
  assert.equal((await l1.data())[0], (await l2.data())[0]);
  tf.dispose([l1, l2]);

  const task: TrainTask = {
    trainable: adapters.variables,
    loss: (b, seed) => tf.tidy(() => model.loss(tf.tensor2d(b.ids, [b.rows, b.seqLen], 'int32'), {
      mask: tf.tensor2d(b.targets, [b.rows, b.seqLen]), linear: adapters.hook(seed),
    })),
  };
  const result = await train(task, examples, [], { name: 't', totalSteps: 8, batchSize: 4, microBatchSize: 2, seed: 1, padId: 0,
    schedule: { kind: 'linear', lr: 1e-2, warmupSteps: 1, totalSteps: 8 }, adam: { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 } });
  assert.ok(result.finalLoss < (result.log[0] as { loss: number }).loss);
  const after = await model.weights();
  for (const [name, t] of base) assert.deepEqual(after.get(name)!.data, t.data, `${name} unchanged`);
  const trained = await adapters.weights();
  assert.ok([...trained].some(([n, t]) => n.includes('lora_B') && t.data.some((x) => x !== 0)), 'B moved');

  const merged = LlamaModel.fromWeights(config, mergeAdapters(base, adapters.modules, trained, adapters.scale), { trainable: false });
  const [hooked, direct] = [model.logits(ids, { linear: adapters.hook(null) }), merged.logits(ids)];
  assert.ok(await maxAbsDiff(hooked, direct) < 1e-5);
  tf.dispose([ids, hooked, direct]);
  merged.dispose(); model.dispose(); adapters.dispose();
});
