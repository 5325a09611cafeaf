// Zero-shot acc / acc_norm of stories260K on the five LLM-Pruner tasks at issue 13's item counts, computed twice:
// by lopper's zero-shot scorer on the chosen tfjs backend (float32), and by the independent float64 LLaMA forward of
// tests/eval/reference-llama.ts, on the same requests (lm-evaluation-harness left truncation included). Prints per
// task both accuracies, how many questions' predictions differ, and how many requests were truncated.
//   usage: node --import tsx bench/zero-shot-f64.ts [cpu|wasm|webgpu] > results.json
import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { initBackend, type BackendKind } from '../src/backend/index.js';
import { loadModel } from '../src/model/index.js';
import { LlamaModel } from '../src/model/llama.js';
import { readMultipleChoice } from '../src/data/jsonl.js';
import { resolveTemplate } from '../src/eval/templates.js';
import { encodeRequest, predictions, zeroShot } from '../src/eval/zero-shot.js';
import type { WeightMap } from '../src/model/types.js';
import { ReferenceLlama } from '../tests/eval/reference-llama.js';

const SHARED = new URL('../../shared/', import.meta.url).pathname;
const TASKS: [string, string, number][] = [
  ['arc_easy', 'ARC-Easy.jsonl', 500], ['arc_challenge', 'ARC-Challenge.jsonl', 300], ['piqa', 'piqa.jsonl', 500],
  ['openbookqa', 'openbookqa.jsonl', 500], ['winogrande', 'winogrande.jsonl', 500],
];

async function main(): Promise<void> {
  const backend = (process.argv[2] ?? 'cpu') as BackendKind;
  await initBackend(backend);
  const loaded = await loadModel(join(SHARED, 'models/stories260K-hf'));
  const { config, tokenizer } = loaded;
  const reference64 = new ReferenceLlama(join(SHARED, 'models/stories260K-hf'));
  const model = LlamaModel.fromWeights(config, loaded.weights as WeightMap);
  const out: Record<string, unknown> = { backend: tf.getBackend(), model: 'stories260K-hf', tasks: {} };
  for (const [name, file, limit] of TASKS) {
    const records = await readMultipleChoice(join(SHARED, 'data/zeroshot', file), limit);
    const template = resolveTemplate(name);
    const t0 = performance.now();
    const lopper = await zeroShot(model, tokenizer!, records, template, { batchSize: 16, maxLength: config.maxPositionEmbeddings });
    const lopperSeconds = (performance.now() - t0) / 1000;
    let acc = 0, accNorm = 0, differ = 0;
    const t1 = performance.now();
    records.forEach((record, q) => {
      const requests = template.requests(record);
      const scores = requests.map((r) => {
        const e = encodeRequest(tokenizer!, r, config.maxPositionEmbeddings);
        const lp = reference64.tokenLogProbs(e.ids);
        let s = 0; for (let i = e.start; i < e.start + e.length; i++) s += lp[i - 1]!;
        return s;
      });
      const mine = predictions(scores, requests.map((r) => r.continuation));
      const theirs = predictions(lopper.scores[q]!, requests.map((r) => r.continuation));
      if (mine.acc === record.label) acc++;
      if (mine.acc_norm === record.label) accNorm++;
      if (mine.acc !== theirs.acc || (template.metrics.includes('acc_norm') && mine.acc_norm !== theirs.acc_norm)) differ++;
    });
    const entry = {
      questions: records.length, truncated_requests: lopper.truncated,
      lopper: { acc: lopper.acc, acc_norm: lopper.acc_norm ?? null, seconds: Number(lopperSeconds.toFixed(1)) },
      float64: { acc: acc / records.length, acc_norm: template.metrics.includes('acc_norm') ? accNorm / records.length : null, seconds: Number(((performance.now() - t1) / 1000).toFixed(1)) },
      questions_with_different_predictions: differ,
    };
    (out.tasks as Record<string, unknown>)[name] = entry;
    console.error(name, JSON.stringify(entry));
  }
  console.log(JSON.stringify(out, null, 2));
}

await main();
