// lm-evaluation-harness left truncation on the real stories260K (512 positions): PIQA line 315 (both solutions run
// past the context) and ARC-Easy line 147 (three of four choices do) score the same through lopper's zero-shot path
// (cpu backend, float32) as through the independent float64 forward of reference-llama.ts over the same truncated ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backend/index.js';
import { loadModel } from '../../src/model/index.js';
import { LlamaModel } from '../../src/model/llama.js';
import { readMultipleChoice } from '../../src/data/jsonl.js';
import { resolveTemplate } from '../../src/eval/templates.js';
import { encodeRequest, zeroShot } from '../../src/eval/zero-shot.js';
import { MODEL, SHARED, missingShared } from '../prune/stories260k-helpers.js';
import { ReferenceLlama } from './reference-llama.js';

const CASES: [string, string, number, number][] = [['piqa', 'piqa.jsonl', 315, 2], ['arc_easy', 'ARC-Easy.jsonl', 147, 3]];

test('over-long zero-shot requests are truncated like the harness and score as a float64 forward does', async (t) => {
  const missing = missingShared();
  if (missing) return t.skip(`missing ${missing}`);
  await initBackend('cpu');
  const loaded = await loadModel(MODEL);
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
  const reference64 = new ReferenceLlama(MODEL);
  try {
    for (const [task, file, line, truncated] of CASES) {
      const path = join(SHARED, 'data/zeroshot', file);
      if (!existsSync(path)) return t.skip(`missing ${path}`);
      const record = (await readMultipleChoice(path, line)).at(-1)!;
      assert.equal(record.line, line);
      const template = resolveTemplate(task);
      const result = await zeroShot(model, loaded.tokenizer!, [record], template, { batchSize: 16, maxLength: loaded.config.maxPositionEmbeddings });
      assert.equal(result.truncated, truncated, `${task} line ${line}: truncated requests`);
      template.requests(record).forEach((r, i) => {
        const e = encodeRequest(loaded.tokenizer!, r, loaded.config.maxPositionEmbeddings);
        assert.ok(e.ids.length <= loaded.config.maxPositionEmbeddings + 1);
        const lp = reference64.tokenLogProbs(e.ids);
        let reference = 0;
        for (let k = e.start; k < e.start + e.length; k++) reference += lp[k - 1]!;
        const got = result.scores[0]![i]!;
        assert.ok(Math.abs(got - reference) <= 1e-6 * Math.abs(reference) + 1e-4, `${task} choice ${i}: lopper ${got}, float64 ${reference}`);
      });
    }
  } finally {
    model.dispose();
    tf.disposeVariables();
  }
});
