// Where a 7B load and an evaluation forward spend their time, on the real checkpoint (bench/pipeline/run.sh part
// `probe`): the read of the shards alone, the whole streamed load, then log-prob forwards of a perplexity batch and
// of zero-shot-like batches, each shape cold (compiles its shaders) and warm.
//   usage: node --import tsx bench/load-probe.ts MODEL_DIR [float32|mixed] > probe.json
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
import { openMeter, usageJson } from '../src/backend/meter.js';
import { readHfConfigFile, streamHfWeights } from '../src/model/hf.js';
import { loadResident } from '../src/model/device-load.js';
import { batchTokenLogProbs } from '../src/eval/log-probs.js';

const [dir, precision = 'float32'] = process.argv.slice(2);
if (!dir) throw new Error('usage: load-probe.ts MODEL_DIR [float32|mixed]');
await initBackend('webgpu', { precision: precision as 'float32' | 'mixed' });
const out: Record<string, unknown> = { precision };
const config = await readHfConfigFile(dir);
let bytes = 0;
let t = performance.now();
await streamHfWeights(dir, config, (_name, raw) => { bytes += raw.bytes.length; });
out.read_only = { seconds: (performance.now() - t) / 1000, bytes };
let meter = await openMeter();
const resident = await loadResident(dir, {});
await resident.model.params.values().next().value!.data();
out.load = usageJson(meter.stop());
const model = resident.model;
const rows = (B: number, T: number) => Array.from({ length: B }, (_, b) => Int32Array.from({ length: T }, (_, i) => (b * 31 + i * 7 + 1) % 500));
const forwards: Record<string, unknown>[] = [];
for (const [B, T] of [[4, 128], [4, 128], [4, 128], [16, 45], [16, 45], [16, 46], [16, 46], [13, 47], [1, 128], [1, 128]] as const) {
  meter = await openMeter();
  await batchTokenLogProbs(model, rows(B, T));
  forwards.push({ shape: [B, T], ...usageJson(meter.stop()) });
  console.error(JSON.stringify(forwards.at(-1)));
}
out.forwards = forwards;
out.tensors = tf.memory().numTensors;
console.log(JSON.stringify(out, null, 1));
process.exit(0);
