// The model residency: one load per key however many stages ask, concurrent requests share the load, least
// recently used unheld models go when the budget needs room, held ones never do, and adopted (derived) models are
// served like loaded ones. Device-derived pruned weights equal the host surgery's bit for bit.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, initWeights, type LlamaConfig } from '../../src/model/index.js';
import { ModelResidency, type ResidentFields } from '../../src/model/residency.js';
import { pruneDeviceModel } from '../../src/prune/device-surgery.js';
import { buildGroups } from '../../src/prune/groups.js';
import { pruneModel } from '../../src/prune/surgery.js';
import { useCpu } from './shared-paths.js';

const config: LlamaConfig = {
  hiddenSize: 32, vocabSize: 64, headDim: 8, numHiddenLayers: 2,
  layers: [0, 1].map(() => ({ numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 48 })),
  rmsNormEps: 1e-5, ropeTheta: 10000, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
  attentionBias: false, mlpBias: false, bosTokenId: 1, eosTokenId: 2,
};

function fields(seed: number): ResidentFields {
  return { config, tokenizer: null, format: 'hf', source: `/models/${seed}`, dtype: 'float32', model: LlamaModel.fromWeights(config, initWeights(config, seed), { trainable: false }) };
}

describe('model residency', () => {
  it('loads a key once, shares concurrent loads, and serves later requests from memory', async () => {
    await useCpu();
    const room = new ModelResidency({ budgetBytes: 1 << 30 });
    let loads = 0;
    const load = async () => { loads++; await new Promise((r) => setTimeout(r, 10)); return fields(1); };
    const [a, b] = await Promise.all([room.acquire('k', load), room.acquire('k', load)]);
    const c = await room.acquire('k', load);
    assert.equal(loads, 1);
    assert.equal(a.resident, b.resident);
    assert.equal(a.resident, c.resident);
    assert.deepEqual(room.history.map((h) => h.how), ['loaded']);
    for (const l of [a, b, c]) l.release();
    room.clear();
    assert.equal(room.keys().length, 0);
  });

  it('evicts the least recently used unheld model when the budget needs room, never a held one', async () => {
    await useCpu();
    const before = tf.memory().numTensors;
    const one = fields(1);
    const bytes = [...one.model.params.values()].reduce((n, v) => n + v.size * 4, 0);
    one.model.dispose();
    const room = new ModelResidency({ budgetBytes: 2 * bytes });
    const a = await room.acquire('a', async () => fields(1));
    const b = await room.acquire('b', async () => fields(2));
    a.release();
    b.release();
    // 'a' is older: loading 'c' evicts it and keeps 'b'.
    const c = await room.acquire('c', async () => fields(3), bytes);
    assert.deepEqual(room.keys().sort(), ['b', 'c']);
    // Both resident models held: a third still loads (a stage needs it), over budget, and nothing held is disposed.
    const b2 = await room.acquire('b', async () => fields(2));
    const d = await room.acquire('d', async () => fields(4), bytes);
    assert.deepEqual(room.keys().sort(), ['b', 'c', 'd']);
    d.release();
    // Released over budget: the least recently used unheld one goes ('d' is the only unheld one).
    assert.deepEqual(room.keys().sort(), ['b', 'c']);
    c.release();
    b2.release();
    room.clear();
    assert.equal(tf.memory().numTensors, before, 'every evicted or cleared model is disposed');
  });

  it('serves an adopted model under its key without loading', async () => {
    await useCpu();
    const room = new ModelResidency({ budgetBytes: 1 << 30 });
    const lease = room.adopt('stage:x', fields(5));
    lease.release();
    const again = await room.acquire('stage:x', async () => { throw new Error('must not load'); });
    assert.equal(again.resident.source, '/models/5');
    assert.deepEqual(room.history.map((h) => h.how), ['derived']);
    again.release();
    room.clear();
  });

  it('derives pruned weights on the device that equal the host surgery bit for bit', async () => {
    await useCpu();
    const weights = initWeights(config, 9);
    const groups = buildGroups(config, { mode: 'block', attention: [0, 2], mlp: [0, 2] });
    const kept = new Map(groups.map((g) => [g.id, g.kind === 'attention' ? [1] : [0, 5, 6, 40, 47]]));
    const host = pruneModel(config, weights, groups, kept);
    const base = LlamaModel.fromWeights(config, weights, { trainable: false });
    const device = pruneDeviceModel(base, groups, kept);
    assert.deepEqual(device.config, host.config);
    const got = await device.weights();
    for (const [name, t] of host.weights) {
      assert.deepEqual(got.get(name)!.shape, t.shape, name);
      assert.deepEqual(got.get(name)!.data, t.data, name);
    }
    device.dispose();
    // The base is untouched by the derived model's disposal (shared tensors are reference counted).
    const still = await base.weights();
    for (const [name, t] of weights) assert.deepEqual(still.get(name)!.data, t.data, name);
    base.dispose();
  });
});
