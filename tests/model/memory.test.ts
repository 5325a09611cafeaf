// Repeated forward+backward passes leave no tensors behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, loadModel } from '../../src/model/index.js';
import { haveShared, paths, useCpu } from './shared-paths.js';

test('tf.memory().numTensors is unchanged after 20 forward+backward passes', async (t) => {
  if (!haveShared(t, 'hf')) return;
  await useCpu();
  const loaded = await loadModel(paths.hf);
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
  const ids = tf.tensor2d(Array.from({ length: 64 }, (_, i) => (i * 37) % 512), [2, 32], 'int32');
  const mask = tf.ones([2, 32], 'int32') as tf.Tensor2D;
  try {
    const before = tf.memory().numTensors;
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) {
      const { loss, grads } = await model.gradients(ids);
      assert.ok(Number.isFinite(loss) && grads.size === model.params.size);
      // The other entry points too: logits, masked loss, log-probs, loss with a linear hook under a gradient tape.
      tf.dispose([model.logits(ids), model.loss(ids, { mask }), model.tokenLogProbs(ids)]);
      const { value, grads: g2 } = tf.variableGrads(() => model.loss(ids, { linear: (_n, x, base) => tf.mul(base(x), 1) }));
      tf.dispose([value, ...Object.values(g2)]);
      assert.equal(tf.memory().numTensors, before, `pass ${i}`);
    }
    t.diagnostic(`20 passes in ${(performance.now() - t0).toFixed(0)} ms; ${before} tensors before and after`);
  } finally {
    tf.dispose([ids, mask]);
    model.dispose();
  }
  assert.equal(model.params.size, 0);
});
