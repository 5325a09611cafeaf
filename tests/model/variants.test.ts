// LLaMA-family variants against transformers 5.17 float64 references (tests/model/reference/, made by
// make_reference.py on the GPU machine): attention + MLP biases with an untied head and llama3 rope scaling,
// Qwen2 (q/k/v biases, tied), linear rope scaling. transformers 5 writes rope_parameters instead of rope_theta.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, loadModel, readSafetensors, saveModel } from '../../src/model/index.js';
import { ids2d, maxAbsDiff, relL2, useCpu } from './shared-paths.js';

const refDir = join(dirname(fileURLToPath(import.meta.url)), 'reference');

for (const variant of ['llama-bias-llama3rope', 'qwen2', 'llama-linear-rope']) {
  test(`${variant}: logits, loss and gradients match transformers`, async (t) => {
    await useCpu();
    const dir = join(refDir, variant);
    const loaded = await loadModel(dir);
    const ref = await readSafetensors(join(dir, 'reference.safetensors'));
    const meta = JSON.parse(await readFile(join(dir, 'reference.json'), 'utf8')) as { loss: number; max_abs_logit: number };
    if (variant === 'llama-bias-llama3rope') {
      assert.equal(loaded.config.ropeScaling?.ropeType, 'llama3');
      assert.equal(loaded.config.ropeTheta, 500000);
      assert.ok(loaded.weights.has('lm_head.weight') && loaded.weights.has('model.layers.0.self_attn.o_proj.bias') && loaded.weights.has('model.layers.1.mlp.up_proj.bias'));
    }
    if (variant === 'qwen2') {
      assert.ok(loaded.weights.has('model.layers.0.self_attn.q_proj.bias') && !loaded.weights.has('model.layers.0.self_attn.o_proj.bias'));
      assert.equal(loaded.config.ropeTheta, 1000000);
    }
    const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
    try {
      const r = ref.get('input_ids')!;
      const ids = ids2d(r.data, r.shape);
      const logits = model.logits(ids);
      const d = maxAbsDiff(await logits.data(), ref.get('logits')!.data);
      logits.dispose();
      const { loss, grads } = await model.gradients(ids);
      ids.dispose();
      let worst = 0, worstName = '';
      for (const [name, g] of grads) {
        const e = relL2(g.data, ref.get(`grad.${name}`)!.data);
        if (e > worst) { worst = e; worstName = name; }
      }
      const lossRel = Math.abs(loss - meta.loss) / meta.loss;
      t.diagnostic(`logits max|diff| ${d.toExponential(3)} (max ${meta.max_abs_logit.toFixed(3)}), loss rel ${lossRel.toExponential(3)}, worst grad rel L2 ${worst.toExponential(3)} (${worstName})`);
      assert.ok(d < 1e-4 * meta.max_abs_logit);
      assert.ok(lossRel < 1e-5);
      assert.ok(worst < 1e-3);
    } finally {
      model.dispose();
    }
    // Round trip through the writer keeps the config's meaning and the weights.
    const out = await mkdtemp(join(tmpdir(), 'lopper-variant-'));
    try {
      await saveModel(out, loaded);
      const back = await loadModel(out);
      assert.deepEqual(back.config.ropeScaling, loaded.config.ropeScaling);
      assert.equal(back.config.ropeTheta, loaded.config.ropeTheta);
      assert.deepEqual(back.config.layers, loaded.config.layers);
      assert.equal(back.config.attentionBias, loaded.config.attentionBias);
      for (const [n, w] of loaded.weights) assert.equal(maxAbsDiff(back.weights.get(n)!.data, w.data), 0, n);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
    assert.equal(tf.memory().numTensors >= 0, true);
  });
}
