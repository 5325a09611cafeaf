// Packed zero-shot rows on WebGPU under `precision: mixed` (lavapipe here, the H200 on the GPU machine): packed rows
// run rotary embeddings and the masked softmax as tfjs ops instead of the fused causal kernels; the scores equal those
// of one sequence per choice through the fused path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadModel } from '../../src/model/index.js';
import { LlamaModel } from '../../src/model/llama.js';
import { readMultipleChoice } from '../../src/data/jsonl.js';
import { resolveTemplate } from '../../src/eval/templates.js';
import { zeroShot } from '../../src/eval/zero-shot.js';
import { MODEL, SHARED, missingShared } from '../prune/stories260k-helpers.js';
import { webGpuSession } from '../backend/webgpu-session.js';

const session = webGpuSession('mixed');

test('packed rows on WebGPU (mixed) score ARC-Easy and PIQA as one sequence per choice does', async (t) => {
  if (!session.info) return t.skip(session.skipReason);
  const missing = missingShared();
  if (missing) return t.skip(`missing ${missing}`);
  const loaded = await loadModel(MODEL);
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
  const perChoice = { tokenLogProbs: (ids: tf.Tensor2D) => model.tokenLogProbs(ids) };
  try {
    for (const [task, file, skip, count] of [['arc_easy', 'ARC-Easy.jsonl', 0, 8], ['piqa', 'piqa.jsonl', 312, 4]] as const) {
      const records = (await readMultipleChoice(join(SHARED, 'data/zeroshot', file), skip + count)).slice(skip);
      const template = resolveTemplate(task);
      const options = { batchSize: 3, maxLength: loaded.config.maxPositionEmbeddings };
      const packed = await zeroShot(model, loaded.tokenizer!, records, template, options);
      const plain = await zeroShot(perChoice, loaded.tokenizer!, records, template, options);
      packed.scores.forEach((s, q) => s.forEach((v, k) => {
        const ref = plain.scores[q]![k]!;
        assert.ok(Math.abs(v - ref) <= 1e-3 * Math.abs(ref) + 1e-2, `${task} q${q} choice ${k}: packed ${v}, per choice ${ref}`);
      }));
    }
  } finally {
    model.dispose();
    tf.disposeVariables();
  }
});
