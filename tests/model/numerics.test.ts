// stories260K against the transformers float64 fixtures: logits, calibration loss, every gradient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, LOGITS_CHUNK_ELEMENTS, loadModel, readSafetensors } from '../../src/model/index.js';
import { haveShared, ids2d, maxAbsDiff, paths, relL2, useCpu } from './shared-paths.js';

test('stories260K (HF) logits, loss and gradients match the transformers fixtures', async (t) => {
  if (!haveShared(t, 'hf', 'fixtures', 'fixturesJson')) return;
  await useCpu();
  const loaded = await loadModel(paths.hf);
  const fx = await readSafetensors(paths.fixtures);
  const fj = JSON.parse(await readFile(paths.fixturesJson, 'utf8')) as { calib_loss: number; grad_sq_norm_total: number };
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
  try {
    const fin = fx.get('forward.input_ids')!;
    const ids = ids2d(fin.data, fin.shape);
    const logits = model.logits(ids);
    const got = await logits.data();
    const ref = fx.get('forward.logits')!.data;
    assert.deepEqual(logits.shape, fx.get('forward.logits')!.shape);
    tf.dispose([ids, logits]);
    const maxLogit = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const diff = maxAbsDiff(got, ref);
    t.diagnostic(`logits max |diff| ${diff.toExponential(3)} (max |logit| ${maxLogit.toFixed(3)}, ratio ${(diff / maxLogit).toExponential(3)})`);
    assert.ok(diff < 1e-4 * maxLogit, `logits differ by ${diff}`);

    const cin = fx.get('calib.input_ids')!;
    const cids = ids2d(cin.data, cin.shape);
    const t0 = performance.now();
    const { loss, grads } = await model.gradients(cids);
    const ms = performance.now() - t0;
    // Steady state (after JIT warm-up): wall and process CPU time of one more pass.
    const c0 = process.cpuUsage(), w0 = performance.now();
    await model.gradients(cids);
    const cpu = process.cpuUsage(c0);
    const steady = `steady ${(performance.now() - w0).toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU`;
    const lossRel = Math.abs(loss - fj.calib_loss) / fj.calib_loss;
    t.diagnostic(`calib loss ${loss} vs ${fj.calib_loss}: rel ${lossRel.toExponential(3)}; forward+backward [10,64] first ${ms.toFixed(0)} ms, ${steady}`);
    assert.ok(lossRel < 1e-5);

    // The loss on its own (no tape) and through tokenLogProbs agree with the gradient pass.
    const l2 = model.loss(cids);
    assert.ok(Math.abs((await l2.data())[0]! - loss) < 1e-6);
    l2.dispose();
    cids.dispose();

    let worst = 0, worstName = '', sq = 0;
    for (const name of model.params.keys()) {
      const g = grads.get(name)!;
      const r = fx.get(`calib.grad.${name}`);
      assert.ok(r, `fixture has no gradient for ${name}`);
      assert.deepEqual(g.shape, r.shape);
      const e = relL2(g.data, r.data);
      if (e > worst) { worst = e; worstName = name; }
      for (const v of g.data) sq += v * v;
    }
    t.diagnostic(`worst gradient rel L2 ${worst.toExponential(3)} (${worstName}); ${grads.size} parameters; Σg² ${sq} vs ${fj.grad_sq_norm_total}`);
    assert.equal(grads.size, model.params.size);
    assert.ok(worst < 1e-3);
    assert.ok(Math.abs(sq - fj.grad_sq_norm_total) / fj.grad_sq_norm_total < 1e-3);
  } finally {
    model.dispose();
  }
});

test('masked loss counts only positions whose mask is 1, and tokenLogProbs is chunk-invariant', async (t) => {
  if (!haveShared(t, 'hf')) return;
  await useCpu();
  const loaded = await loadModel(paths.hf);
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
  try {
    const ids = tf.tensor2d([[1, 403, 407, 261, 378, 13], [1, 291, 410, 456, 425, 417]], [2, 6], 'int32');
    const lpT = model.tokenLogProbs(ids);
    const lp = await lpT.array();
    // Chunked LM head (3 rows per chunk) gives the same log-probs.
    model.logitsChunkElements = 3 * loaded.config.vocabSize;
    const chunked = model.tokenLogProbs(ids);
    assert.ok(maxAbsDiff(await chunked.data(), await lpT.data()) < 1e-6);
    model.logitsChunkElements = LOGITS_CHUNK_ELEMENTS;
    tf.dispose([lpT, chunked]);
    const mask = tf.tensor2d([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1]], [2, 6], 'int32');
    const masked = (await model.loss(ids, { mask }).data())[0]!;
    // mask[:, t] selects the prediction of token t, i.e. log-prob column t-1.
    const picked = [lp[0]![0]!, lp[0]![1]!, lp[1]![1]!, lp[1]![2]!, lp[1]![3]!, lp[1]![4]!];
    const expected = -picked.reduce((a, b) => a + b, 0) / picked.length;
    assert.ok(Math.abs(masked - expected) < 1e-5, `${masked} vs ${expected}`);
    // The same log-probs from full logits (no chunking) and a log-softmax.
    const full = tf.tidy(() => tf.logSoftmax(model.logits(ids)));
    const fa = (await full.array()) as number[][][];
    const ia = (await ids.array()) as number[][];
    for (let b = 0; b < 2; b++) for (let s = 0; s < 5; s++) assert.ok(Math.abs(fa[b]![s]![ia[b]![s + 1]!]! - lp[b]![s]!) < 1e-5);
    tf.dispose([ids, mask, full]);
  } finally {
    model.dispose();
  }
});
