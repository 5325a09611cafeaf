// Per-kernel GPU time of one log-prob forward (tf.profile with WebGPU timestamp queries) on a random model of the
// pipeline benchmark's shape (make_model.py: Llama-3-8B layers, 512-token vocabulary), for a few batch shapes.
//   usage: node --import tsx bench/forward-profile.ts [float32|mixed] > profile.json
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
import { batchTokenLogProbs, packedScores } from '../src/eval/log-probs.js';
import { packRequests } from '../src/eval/packing.js';
import { deviceRandomModel } from './device-model.js';
import type { LlamaConfig } from '../src/model/types.js';

const precision = (process.argv[2] ?? 'float32') as 'float32' | 'mixed';
await initBackend('webgpu', { precision });
const nLayers = Number(process.env.PROFILE_LAYERS ?? 32);
const layers = Array.from({ length: nLayers }, () => ({ numAttentionHeads: 32, numKeyValueHeads: 8, intermediateSize: Number(process.env.PROFILE_MLP ?? 14336) }));
const config: LlamaConfig = {
  hiddenSize: 4096, vocabSize: 512, headDim: 128, numHiddenLayers: nLayers, layers, rmsNormEps: 1e-5, ropeTheta: 500000,
  maxPositionEmbeddings: 2048, tieWordEmbeddings: false, attentionBias: false, mlpBias: false, bosTokenId: 1, eosTokenId: 2,
} as LlamaConfig;
const model = deviceRandomModel(config, 1);
const rows = (B: number, T: number) => Array.from({ length: B }, (_, b) => Int32Array.from({ length: T }, (_, i) => (b * 31 + i * 7 + 1) % 500));
const out: Record<string, unknown> = { precision, shapes: [] };
// A packed zero-shot batch like ARC-Easy's on this tokenizer: a 100-id question shared by 4 choices of 30 ids (T 224).
const question = (b: number) => Array.from({ length: 100 }, (_, i) => (b * 17 + i * 3 + 1) % 500);
const packed = (B: number) => Array.from({ length: B }, (_, b) => packRequests(Array.from({ length: 4 }, (_, c) => {
  const ids = [...question(b), ...Array.from({ length: 30 }, (_, i) => (c * 11 + i * 5 + 2) % 500)];
  return { ids, start: 100, length: 30, prefixMatched: true, truncated: false };
})));
const shapes: [number, number, boolean][] = [[1, 128, false], [4, 128, false], [16, 45, false], [16, 224, true]];
for (const [B, T, isPacked] of shapes) {
  const forward = () => (isPacked ? packedScores(model, packed(B), T, 0) : batchTokenLogProbs(model, rows(B, T)));
  await forward();
  let t = performance.now();
  await forward();
  const warm = (performance.now() - t) / 1000;
  t = performance.now();
  const info = await tf.profile(async () => { await forward(); });
  const profiledWall = (performance.now() - t) / 1000;
  const byKernel = new Map<string, { ms: number; n: number }>();
  let timedMs = 0;
  for (const k of info.kernels) {
    const ms = Number(await (k.kernelTimeMs as unknown as Promise<number> | number)) || 0;
    timedMs += ms;
    const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
    const e = byKernel.get(key) ?? { ms: 0, n: 0 };
    e.ms += ms; e.n++;
    byKernel.set(key, e);
  }
  const top = [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 30).map(([k, v]) => ({ kernel: k, ms: Number(v.ms.toFixed(2)), n: v.n }));
  const entry = { shape: [B, T], packed: isPacked, warm_s: warm, profiled_wall_s: profiledWall, kernels: info.kernels.length, timed_ms: Number(timedMs.toFixed(1)), top };
  (out.shapes as unknown[]).push(entry);
  console.error(JSON.stringify({ shape: [B, T], warm, kernels: info.kernels.length, timedMs }));
}
console.log(JSON.stringify(out, null, 1));
process.exit(0);
