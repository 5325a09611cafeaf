// The forward-statistics scores on WebGPU (accumulators and W's column reductions on the device) equal the cpu
// backend's on stories260K (whose host float64 path tests/prune/stories260k-forward-methods.test.ts holds to the
// float64 references), with no tensor left behind. Skips where Dawn finds no adapter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { LlamaModel, loadModel } from '../../src/model/index.js';
import { buildGroups } from '../../src/prune/groups.js';
import { forwardScores, type ForwardKind } from '../../src/prune/forward-scores.js';
import { webGpuSession } from '../backend/webgpu-session.js';
import { MODEL, missingShared } from './stories260k-helpers.js';

const session = webGpuSession('float32');

async function scoresOn(backend: string, kind: ForwardKind): Promise<Map<string, Float64Array>> {
  const prev = tf.getBackend();
  await tf.setBackend(backend);
  try {
    const loaded = await loadModel(MODEL);
    const model = LlamaModel.fromWeights(loaded.config, loaded.weights, { trainable: false });
    const groups = buildGroups(loaded.config, kind === 'block_influence' ? { mode: 'layer' } : { mode: 'block', attention: [0, 5], mlp: [0, 5] });
    // A deterministic batch of 6 samples × 48 ids (the cpu / GPU comparison needs no real text).
    const ids = Int32Array.from({ length: 6 * 48 }, (_, i) => (i * 131 + 7) % 512);
    const before = tf.memory().numTensors;
    const out = await forwardScores(model, groups, { kind, metric: 'WIFV', ids, samples: 6, seqLen: 48, stage: 'test' });
    assert.equal(tf.memory().numTensors, before, `${backend} ${kind}: no tensor left behind`);
    model.dispose();
    const flat = new Map<string, Float64Array>();
    for (const [g, roles] of out.members) for (const [role, s] of roles) flat.set(`${g}/${role}`, s);
    for (const [g, m] of out.meanInputs) flat.set(`${g}/mean_input`, m);
    return flat;
  } finally {
    await tf.setBackend(prev);
  }
}

test('wanda, flap and block_influence scores on WebGPU equal the cpu backend', async (t) => {
  const missing = missingShared();
  if (missing) return t.skip(`missing ${missing}`);
  if (!session.info) return t.skip(session.skipReason);
  for (const kind of ['wanda', 'flap', 'block_influence'] as const) {
    const cpu = await scoresOn('cpu', kind);
    const gpu = await scoresOn('webgpu', kind);
    assert.deepEqual([...gpu.keys()], [...cpu.keys()]);
    for (const [name, want] of cpu) {
      const got = gpu.get(name)!;
      const scale = Math.max(...want.map(Math.abs));
      want.forEach((x, i) => assert.ok(Math.abs(got[i]! - x) <= 1e-4 * scale, `${kind} ${name}[${i}]: webgpu ${got[i]} vs cpu ${x}`));
    }
  }
});
