// Weights over the per-tensor limit (WebGPU's maxStorageBufferBindingSize) are split into row chunks:
// embed_tokens (gather per chunk) and lm_head / the tied head (logits per chunk, concatenated). On cpu with a tiny
// override limit a split model must reproduce the unsplit one (logits, loss, every gradient under its HF name); on
// WebGPU (lavapipe binds 128 MiB) a model with a 143 MB embedding and head must run and match the cpu result.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { LopperError } from '../../src/errors/lopper-error.js';
import { LlamaModel, initWeights, loadModel, backendMaxTensorBytes, chunkKey } from '../../src/model/index.js';
import type { LlamaConfig, WeightMap } from '../../src/model/index.js';
import { AdamW } from '../../src/train/adamw.js';
import { decaysExceptNormsAndBiases } from '../../src/train/run-training.js';
import { haveShared, ids2d, maxAbsDiff, paths, relL2, useCpu } from './shared-paths.js';

const EMBED = 'model.embed_tokens.weight';
const HEAD = 'lm_head.weight';

/** Deterministic ids in [0, vocab), including the first and last id and both sides of `edges`. */
function someIds(vocab: number, B: number, T: number, edges: number[]): Int32Array {
  const out = new Int32Array(B * T);
  let s = 12345;
  for (let i = 0; i < out.length; i++) { s = (s * 1103515245 + 12345) >>> 0; out[i] = s % vocab; }
  const fixed = [0, vocab - 1, ...edges.flatMap((e) => [e - 1, e])].filter((v) => v >= 0 && v < vocab);
  fixed.forEach((v, i) => { if (i < out.length) out[(i * 7) % out.length] = v; });
  return out;
}

/** Logits of the first `logitsRows` sequences (logits() materializes [B, T, V], which must fit the limit), log-probs, loss. */
async function forwardAll(model: LlamaModel, ids: tf.Tensor2D, logitsRows = ids.shape[0]) {
  const head = tf.slice(ids, [0, 0], [logitsRows, ids.shape[1]]);
  const logits = model.logits(head);
  head.dispose();
  const lp = model.tokenLogProbs(ids);
  const l = model.loss(ids);
  const out = { logits: (await logits.data()) as Float32Array, lp: (await lp.data()) as Float32Array, loss: (await l.data())[0]! };
  tf.dispose([logits, lp, l]);
  return out;
}

describe('split weights on cpu (override limit)', () => {
  // stories260K: embedding 512 × 64 float32 = 128 KiB; the largest other weight (MLP 172 × 64) is 44,032 bytes.
  const LIMIT = 50_000;

  async function compare(t: import('node:test').TestContext, untied: boolean) {
    await useCpu();
    const loaded = await loadModel(paths.hf);
    let config: LlamaConfig = loaded.config;
    const weights: WeightMap = new Map(loaded.weights);
    if (untied) {
      // An untied head: the embedding plus a deterministic perturbation, so the two gradients differ.
      config = { ...config, tieWordEmbeddings: false };
      const e = weights.get(EMBED)!;
      const head = Float32Array.from(e.data, (v, i) => v + 0.01 * Math.sin(i));
      const entries = [...weights.entries(), [HEAD, { shape: e.shape.slice(), data: head }] as const];
      weights.clear();
      for (const [k, v] of entries) weights.set(k, v);
    }
    const plain = LlamaModel.fromWeights(config, weights);
    const split = LlamaModel.fromWeights(config, weights, { maxTensorBytes: LIMIT });
    try {
      assert.equal(plain.splits.size, 0);
      assert.deepEqual([...split.splits.keys()], untied ? [EMBED, HEAD] : [EMBED]);
      const s = split.splits.get(EMBED)!;
      assert.equal(s.keys.length, 3); // 512 rows at ≤ 195 rows per chunk → 171 + 171 + 170
      assert.deepEqual(s.keys.map((k) => split.params.get(k)!.shape), [[171, 64], [171, 64], [170, 64]]);
      assert.ok(!split.params.has(EMBED) && split.params.has(chunkKey(EMBED, 2)));
      for (const v of split.params.values()) assert.ok(v.size * 4 <= LIMIT, `${v.name} is over the limit`);

      // weights() gives back the full tensors under HF names, identical to the input.
      const w = await split.weights();
      assert.deepEqual([...w.keys()], [...weights.keys()].filter((k) => w.has(k)));
      assert.equal(w.size, weights.size);
      for (const [name, h] of weights) {
        assert.deepEqual(w.get(name)!.shape, h.shape);
        assert.equal(maxAbsDiff(w.get(name)!.data, h.data), 0, name);
      }

      const B = 4, T = 24; // 96 rows > the 24-row logits blocks the split model's limit allows
      const ids = ids2d(someIds(config.vocabSize, B, T, [171, 342]), [B, T]);
      const a = await forwardAll(plain, ids, 1);
      const b = await forwardAll(split, ids, 1); // [1, 24, 512] = 49,152 bytes: under the limit
      const dl = maxAbsDiff(b.logits, a.logits), dlp = maxAbsDiff(b.lp, a.lp);
      t.diagnostic(`logits max|diff| ${dl.toExponential(3)}, log-probs ${dlp.toExponential(3)}, loss ${a.loss} vs ${b.loss}`);
      assert.ok(dl <= 1e-6 && dlp <= 1e-5);
      assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * Math.abs(a.loss));

      const ga = await plain.gradients(ids);
      const gb = await split.gradients(ids);
      ids.dispose();
      assert.ok(Math.abs(ga.loss - gb.loss) <= 1e-6 * Math.abs(ga.loss));
      assert.deepEqual([...gb.grads.keys()], [...ga.grads.keys()]);
      assert.ok(gb.grads.has(EMBED) && (!untied || gb.grads.has(HEAD)));
      let worst = 0, worstName = '';
      for (const [name, g] of ga.grads) {
        const h = gb.grads.get(name)!;
        assert.deepEqual(h.shape, g.shape, name);
        const e = relL2(h.data, g.data);
        if (e > worst) { worst = e; worstName = name; }
      }
      t.diagnostic(`${ga.grads.size} gradients, worst rel L2 ${worst.toExponential(3)} (${worstName})`);
      assert.ok(worst < 1e-5);

      // A subset by HF name, the split one included.
      const subIds = ids2dOnce(config.vocabSize);
      const sub = await split.gradients(subIds, [EMBED, 'model.norm.weight']);
      subIds.dispose();
      assert.deepEqual([...sub.grads.keys()], [EMBED, 'model.norm.weight']);
      assert.deepEqual(sub.grads.get(EMBED)!.shape, [512, 64]);
    } finally {
      plain.dispose();
      split.dispose();
    }
  }

  function ids2dOnce(vocab: number): tf.Tensor2D {
    return ids2d(someIds(vocab, 2, 8, [171]), [2, 8]);
  }

  it('stories260K (tied): split embedding / head match the unsplit model', async (t) => {
    if (!haveShared(t, 'hf')) return;
    await compare(t, false);
  });

  it('stories260K with an untied head: split embedding and lm_head match the unsplit model', async (t) => {
    if (!haveShared(t, 'hf')) return;
    await compare(t, true);
  });

  it('training over model.params (as the train stage does: AdamW on every variable) gives the unsplit weights', async (t) => {
    if (!haveShared(t, 'hf')) return;
    await useCpu();
    const loaded = await loadModel(paths.hf);
    const models = [LlamaModel.fromWeights(loaded.config, loaded.weights), LlamaModel.fromWeights(loaded.config, loaded.weights, { maxTensorBytes: LIMIT })];
    try {
      const after: WeightMap[] = [];
      for (const model of models) {
        const opt = new AdamW(model.params, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, decays: decaysExceptNormsAndBiases });
        const varList = [...model.params.values()];
        const byVar = new Map([...model.params].map(([k, v]) => [v.name, k]));
        for (let step = 0; step < 3; step++) {
          const ids = ids2d(someIds(loaded.config.vocabSize + step, 2, 16, [171, 342]).map((v) => v % loaded.config.vocabSize), [2, 16]);
          const { value, grads } = tf.variableGrads(() => model.loss(ids), varList);
          const named = new Map(Object.entries(grads).map(([n, g]) => [byVar.get(n)!, g]));
          opt.step(named, 1e-3);
          tf.dispose([value, ids, ...Object.values(grads)]);
        }
        opt.dispose();
        after.push(await model.weights());
      }
      let worst = 0;
      for (const [name, w] of after[0]!) worst = Math.max(worst, maxAbsDiff(after[1]!.get(name)!.data, w.data));
      t.diagnostic(`after 3 AdamW steps: max |Δw| split vs unsplit ${worst.toExponential(3)}`);
      // Adam divides by √v, so gradients equal to ~1e-7 relative can move an element's update by a bit more:
      // allow 1% of the largest possible total update (3 steps × lr).
      assert.ok(worst < 0.01 * 3 * 1e-3);
      assert.ok(maxAbsDiff(after[1]!.get(EMBED)!.data, loaded.weights.get(EMBED)!.data) > 1e-4, 'the split embedding was trained');
    } finally {
      for (const m of models) m.dispose();
    }
  });

  it('refuses other weights over the limit with LP8007; no limit and no split on cpu by default', async (t) => {
    if (!haveShared(t, 'hf')) return;
    await useCpu();
    assert.equal(backendMaxTensorBytes(), null);
    const loaded = await loadModel(paths.hf);
    assert.throws(() => LlamaModel.fromWeights(loaded.config, loaded.weights, { maxTensorBytes: 40_000 }),
      (e: unknown) => e instanceof LopperError && e.code === 'LP8007' && /mlp/.test(e.message) && /embed_tokens.*lm_head/.test(e.message));
    // The static override applies when no option is given.
    LlamaModel.maxTensorBytes = LIMIT;
    try {
      const m = LlamaModel.fromWeights(loaded.config, loaded.weights);
      assert.ok(m.splits.has(EMBED));
      m.dispose();
    } finally {
      LlamaModel.maxTensorBytes = null;
    }
    const m = LlamaModel.fromWeights(loaded.config, loaded.weights);
    assert.equal(m.splits.size, 0);
    m.dispose();
  });
});

describe('split weights on webgpu', () => {
  after(async () => {
    const { disposeWebGpu } = await import('../../src/backend/webgpu.js');
    await disposeWebGpu();
  });

  it('an embedding and head over the binding limit run forward + loss and match cpu', async (t) => {
    // vocab 70,000 × hidden 512 float32 = 143 MB > lavapipe's 128 MiB per binding.
    const V = 70_000, H = 512;
    const config: LlamaConfig = {
      hiddenSize: H, vocabSize: V, headDim: 64, numHiddenLayers: 1,
      layers: [{ numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 256 }],
      rmsNormEps: 1e-5, ropeTheta: 10000, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
      attentionBias: false, mlpBias: false, bosTokenId: 1, eosTokenId: 2,
    };
    const weights = initWeights(config, 7);
    const B = 2, T = 8;
    const idData = someIds(V, B, T, [32_768, 35_000, 65_536]);

    await useCpu();
    const cpuModel = LlamaModel.fromWeights(config, weights);
    let ref: Awaited<ReturnType<typeof forwardAll>>;
    try {
      const ids = ids2d(idData, [B, T]);
      ref = await forwardAll(cpuModel, ids);
      ids.dispose();
    } finally {
      cpuModel.dispose();
    }

    const webgpu = await import('../../src/backend/webgpu.js');
    let info;
    try {
      info = await webgpu.initWebGpu({ precision: 'float32' });
    } catch (e) {
      if (e instanceof LopperError && e.code === 'LP8001') return t.skip(`no WebGPU adapter on this machine (${e.message})`);
      throw e;
    }
    const limit = info.limits.maxStorageBufferBindingSize!;
    assert.equal(backendMaxTensorBytes(), limit);
    if (V * H * 4 <= limit) return t.skip(`this device binds ${limit} bytes: the ${V * H * 4}-byte embedding needs no split here`);
    webgpu.clearDeviceErrors();
    const model = LlamaModel.fromWeights(config, weights);
    try {
      assert.ok(model.splits.has(EMBED) && model.splits.has(HEAD));
      for (const v of model.params.values()) assert.ok(v.size * 4 <= limit);
      const ids = ids2d(idData, [B, T]);
      const got = await forwardAll(model, ids);
      ids.dispose();
      await webgpu.assertNoDeviceError('split-weights test');
      const rl = relL2(got.logits, ref.logits), rlp = relL2(got.lp, ref.lp);
      const rloss = Math.abs(got.loss - ref.loss) / Math.abs(ref.loss);
      t.diagnostic(`${info.adapter}: limit ${limit} B, ${model.splits.get(EMBED)!.keys.length} chunks; logits rel L2 ${rl.toExponential(3)}, log-probs ${rlp.toExponential(3)}, loss ${got.loss} vs cpu ${ref.loss} (rel ${rloss.toExponential(3)})`);
      assert.ok(rl < 1e-4 && rlp < 1e-4 && rloss < 1e-4);
    } finally {
      model.dispose();
    }
  });
});
