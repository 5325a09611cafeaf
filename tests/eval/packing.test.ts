// Packed zero-shot rows (src/eval/packing.ts): a question's choices after their common prefix in one row give the
// scores of one sequence per choice. Structure on hand-made requests; scores on the real stories260K (cpu, float32)
// against the one-row-per-choice path, including left-truncated requests and choices that share their first ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backend/index.js';
import { loadModel } from '../../src/model/index.js';
import { LlamaModel } from '../../src/model/llama.js';
import { readMultipleChoice } from '../../src/data/jsonl.js';
import { resolveTemplate } from '../../src/eval/templates.js';
import { zeroShot, type EncodedRequest } from '../../src/eval/zero-shot.js';
import { bucketLength, packedBatches, packRequests, PACKED_BATCH_TOKENS } from '../../src/eval/packing.js';
import { MODEL, SHARED, missingShared } from '../prune/stories260k-helpers.js';

const request = (ids: number[], start: number): EncodedRequest => ({ ids, start, length: ids.length - start, prefixMatched: true, truncated: false });

test('a packed row: the common prefix less one id, then each choice at its own positions; scored outputs point at the right slots', () => {
  // Common prefix [1, 5, 6, 7] (the choices' first id 7 is shared): the row shares [1, 5, 6].
  const row = packRequests([request([1, 5, 6, 7, 8], 3), request([1, 5, 6, 7, 9, 4], 3)]);
  assert.deepEqual(row.ids, [1, 5, 6, 7, 8, 7, 9, 4]);
  assert.deepEqual(row.positions, [0, 1, 2, 3, 4, 3, 4, 5]);
  assert.deepEqual(row.segments, [0, 0, 0, 1, 1, 2, 2, 2]);
  assert.deepEqual(row.targets, [5, 6, 7, 8, 0, 9, 4, 0]);
  // Choice 0 scores ids 7 (predicted at shared slot 2) and 8 (slot 3); choice 1 scores 7 (slot 2), 9 (5), 4 (6).
  assert.deepEqual(row.scored, [[2, 3], [2, 5, 6]]);
  for (const [j, slots] of row.scored.entries()) {
    const ids = j === 0 ? [1, 5, 6, 7, 8] : [1, 5, 6, 7, 9, 4];
    assert.deepEqual(slots.map((s) => row.targets[s]), ids.slice(3));
  }
});

test('requests without a common prefix (left-truncated) and a single request pack as independent branches', () => {
  const apart = packRequests([request([3, 4, 5], 1), request([6, 7], 1)]);
  assert.deepEqual(apart.ids, [3, 4, 5, 6, 7]);
  assert.deepEqual(apart.positions, [0, 1, 2, 0, 1]);
  assert.deepEqual(apart.segments, [1, 1, 1, 2, 2]);
  assert.deepEqual(apart.scored, [[0, 1], [3]]);
  const alone = packRequests([request([1, 2, 3, 4], 2)]);
  assert.deepEqual(alone.ids, [1, 2, 3, 4]);
  assert.deepEqual(alone.segments, [0, 0, 0, 1]);
  assert.deepEqual(alone.scored, [[1, 2]]);
});

test('batches: longest rows first, padded to bucket lengths, at most batch_size rows and the token budget', () => {
  assert.deepEqual([1, 16, 17, 256, 257, 300].map(bucketLength), [16, 16, 32, 256, 320, 320]);
  const lengths = [40, 900, 12, 33, 700, 40, 5];
  const batches = packedBatches(lengths, 3);
  assert.deepEqual(batches.flatMap((b) => b.rows).sort(), lengths.map((_, i) => i).sort());
  for (const b of batches) {
    assert.ok(b.rows.length <= 3 && (b.rows.length === 1 || b.rows.length * b.length <= PACKED_BATCH_TOKENS));
    for (const r of b.rows) assert.ok(lengths[r]! <= b.length);
  }
  assert.deepEqual(batches.map((b) => b.rows), [[1, 4, 0], [5, 3, 2], [6]]);
  assert.deepEqual(packedBatches([5000, 4000, 10], 16).map((b) => [b.rows, b.length]), [[[0], 5056], [[1, 2], 4032]]);
});

test('packed rows score stories260K questions as one sequence per choice does (ARC, PIQA with truncation, WinoGrande)', async (t) => {
  const missing = missingShared();
  if (missing) return t.skip(`missing ${missing}`);
  await initBackend('cpu');
  const loaded = await loadModel(MODEL);
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
  // The same model without targetLogProbs/logits: zero-shot runs one row per choice.
  const perChoice = { tokenLogProbs: (ids: tf.Tensor2D) => model.tokenLogProbs(ids) };
  try {
    const cases: [string, string, number, number][] = [['arc_easy', 'ARC-Easy.jsonl', 0, 12], ['piqa', 'piqa.jsonl', 310, 6], ['winogrande', 'winogrande.jsonl', 0, 8]];
    for (const [task, file, skip, count] of cases) {
      const records = (await readMultipleChoice(join(SHARED, 'data/zeroshot', file), skip + count)).slice(skip);
      const template = resolveTemplate(task);
      const options = { batchSize: 4, maxLength: loaded.config.maxPositionEmbeddings };
      const before = tf.memory().numTensors;
      const packed = await zeroShot(model, loaded.tokenizer!, records, template, options);
      assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
      const plain = await zeroShot(perChoice, loaded.tokenizer!, records, template, options);
      if (task === 'piqa') assert.ok(packed.truncated > 0, 'PIQA line 315 has truncated requests');
      packed.scores.forEach((s, q) => s.forEach((v, k) => {
        const ref = plain.scores[q]![k]!;
        assert.ok(Math.abs(v - ref) <= 2e-6 * Math.abs(ref) + 2e-4, `${task} q${q} choice ${k}: packed ${v}, per choice ${ref}`);
      }));
      assert.deepEqual({ acc: packed.acc, acc_norm: packed.acc_norm }, { acc: plain.acc, acc_norm: plain.acc_norm });
    }
  } finally {
    model.dispose();
    tf.disposeVariables();
  }
});
