// The train stage: a tiny LLaMA from scratch on Brown text with a lopper-trained BPE; the output is a Hugging Face
// directory lopper loads back (same logits), the tokenizer can be borrowed by a second model, and loss goes down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, loadModel } from '../../src/model/index.js';
import { LopperError } from '../../src/errors/lopper-error.js';
import trainStage from '../../src/stages/train.js';
import { runStage, tempDir, useBackend, type Bench } from '../lora/helpers.js';

const CONFIG = { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64 };
const TRAIN = { max_steps: 30, lr: 1e-2, batch_size: 8, micro_batch_size: 4, cutoff_len: 32, warmup_steps: 3, schedule: 'cosine', weight_decay: 0.1, grad_clip: 1, val_size: 8, eval_every: 15 };

test('train: BPE tokenizer + LLaMA from scratch, loss goes down, output reloads; tokenizer.from borrows it', async () => {
  await useBackend();
  const root = tempDir('train');
  const text = readFileSync(new URL('../../examples/data/brown-train.txt', import.meta.url), 'utf8').slice(0, 60_000);
  writeFileSync(path.join(root, 'brown.txt'), text);
  const bench: Bench = { root, models: {}, datasets: { brown: { name: 'brown', path: path.join(root, 'brown.txt'), format: 'text', options: {} } } };
  const before = tf.memory().numTensors;
  const { outDir, result } = await runStage(bench, trainStage, 'base', { dataset: 'brown', config: CONFIG, tokenizer: { kind: 'bpe', vocab_size: 320 }, train: TRAIN });
  assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
  const summary = (result as { summary: Record<string, number> }).summary;
  const log = readFileSync(path.join(outDir, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const vals = log.filter((r) => 'val_loss' in r);
  assert.deepEqual(vals.map((r) => r.step), [0, 15, 30]);
  assert.ok(vals[2].val_loss < vals[0].val_loss - 0.8, `validation loss ${vals[0].val_loss} → ${vals[2].val_loss}`);
  assert.equal(summary.params, 320 * 32 + 2 * (32 * 32 * 2 + 32 * 16 * 2 + 3 * 32 * 64 + 64) + 32);

  const loaded = await loadModel(path.join(outDir, 'model'));
  assert.equal(loaded.config.vocabSize, 320);
  assert.equal(loaded.config.headDim, 8);
  assert.equal(loaded.config.layers[0]!.numKeyValueHeads, 2);
  assert.ok(loaded.config.tieWordEmbeddings);
  const hf = JSON.parse(readFileSync(path.join(outDir, 'model', 'config.json'), 'utf8'));
  assert.equal(hf.model_type, 'llama');
  const sample = text.slice(500, 700);
  assert.equal(loaded.tokenizer!.decode(loaded.tokenizer!.encode(sample)), sample);
  const m = LlamaModel.fromWeights(loaded.config, loaded.weights, { trainable: false });
  const ids = tf.tensor2d([[1, ...loaded.tokenizer!.encode(sample).slice(0, 20)]], undefined, 'int32');
  const loss = m.loss(ids as tf.Tensor2D);
  assert.ok((await loss.data())[0]! < Math.log(320), 'the saved model predicts better than uniform');
  tf.dispose([ids, loss]); m.dispose();

  // A second model with the first one's tokenizer: identical tokenizer files, different shape.
  bench.models.base = path.join(outDir, 'model');
  const small = await runStage(bench, trainStage, 'small', {
    dataset: 'brown', config: { ...CONFIG, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, intermediate_size: 32 },
    tokenizer: { from: 'base' }, train: { ...TRAIN, max_steps: 4, eval_every: 4 },
  });
  assert.deepEqual(readFileSync(path.join(small.outDir, 'model', 'tokenizer.json')), readFileSync(path.join(outDir, 'model', 'tokenizer.json')));
  const smallConfig = (await loadModel(path.join(small.outDir, 'model'))).config;
  assert.equal(smallConfig.layers[0]!.numAttentionHeads, 2);
  assert.equal(smallConfig.headDim, 8, 'head_dim kept at the pruned value, not hidden / heads');

  // User errors name the field.
  await assert.rejects(runStage(bench, trainStage, 'bad', { dataset: 'brown', config: { ...CONFIG, num_attention_heads: 3 }, train: TRAIN }),
    (e: unknown) => e instanceof LopperError && e.code === 'LP6005' && /divisible/.test(e.message));
  await assert.rejects(runStage(bench, trainStage, 'bad', { dataset: 'brown', config: CONFIG, train: { lr: 1 } }),
    (e: unknown) => e instanceof LopperError && e.code === 'LP6001' && /epochs/.test(e.message));
});
