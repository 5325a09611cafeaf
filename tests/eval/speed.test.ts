import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { forwardMacs, measureTokensPerSecond } from '../../src/eval/speed.js';
import type { LlamaConfig } from '../../src/model/types.js';
import { BigramModel, bigramTable } from './fakes.js';

await tf.setBackend('cpu');

function llama(hidden: number, inter: number, layers: number, heads: number, kv: number, vocab: number): LlamaConfig {
  return {
    hiddenSize: hidden, vocabSize: vocab, headDim: hidden / heads, numHiddenLayers: layers,
    layers: Array.from({ length: layers }, () => ({ numAttentionHeads: heads, numKeyValueHeads: kv, intermediateSize: inter })),
    rmsNormEps: 1e-6, ropeTheta: 10000, maxPositionEmbeddings: 2048, tieWordEmbeddings: false, attentionBias: false, mlpBias: false,
    bosTokenId: 1, eosTokenId: 2,
  };
}

test('dense LLaMA-7B at 64 tokens: 423.93 G MACs (LLM-Pruner reports 424.02 G from ptflops)', () => {
  const macs = forwardMacs(llama(4096, 11008, 32, 32, 32, 32000), 64);
  assert.equal(macs, 423_926_693_888);
  assert.ok(Math.abs(macs / 424.02e9 - 1) < 5e-4);
});

test('stories260K MACs written out by hand; pruned layers count their own widths', () => {
  const c = llama(64, 172, 5, 8, 4, 512);
  // per token and layer: q,o 2·64·64, k,v 2·64·32, MLP 3·64·172; attention 2·8·T·8 per token; head 64·512.
  const T = 128;
  const perLayer = T * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 172) + 2 * 8 * T * T * 8;
  assert.equal(forwardMacs(c, T), 5 * perLayer + T * 64 * 512);
  c.layers[2] = { numAttentionHeads: 0, numKeyValueHeads: 0, intermediateSize: 0 };
  assert.equal(forwardMacs(c, T), 4 * perLayer + T * 64 * 512);
});

test('tokens/s times only the passes after the warm-up and counts batch × seq_len tokens each', async () => {
  const model = new BigramModel(16, bigramTable(16));
  const r = await measureTokensPerSecond(model, { seqLen: 32, batchSize: 2, iterations: 3, vocabSize: 16 });
  assert.equal(model.calls, 4);
  assert.deepEqual(model.shapes[0], [2, 32]);
  assert.equal(r.tokens, 3 * 2 * 32);
  assert.ok(r.seconds > 0 && Math.abs(r.tokensPerSecond - r.tokens / r.seconds) < 1e-6 * r.tokensPerSecond);
  model.dispose();
});
