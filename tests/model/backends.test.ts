// Backend selection and the fixture numerics on every backend this machine has (cpu, wasm; webgpu when a Vulkan
// adapter exists). A requested backend that is missing is a LopperError, not a fallback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { LopperError } from '../../src/errors/lopper-error.js';
import { describeBackend, initBackend, type BackendKind } from '../../src/backend/index.js';
import { LlamaModel, loadModel, readSafetensors } from '../../src/model/index.js';
import { haveShared, ids2d, maxAbsDiff, paths, relL2 } from './shared-paths.js';

async function fixtureNumerics(t: { diagnostic(m: string): void }, label: string): Promise<void> {
  const loaded = await loadModel(paths.hf);
  const fx = await readSafetensors(paths.fixtures);
  const fj = JSON.parse(await readFile(paths.fixturesJson, 'utf8')) as { calib_loss: number };
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
  try {
    const fin = fx.get('forward.input_ids')!;
    const ids = ids2d(fin.data, fin.shape);
    const logits = model.logits(ids);
    const ref = fx.get('forward.logits')!.data;
    const maxLogit = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const d = maxAbsDiff(await logits.data(), ref);
    tf.dispose([ids, logits]);
    const cin = fx.get('calib.input_ids')!;
    const cids = ids2d(cin.data, cin.shape);
    await model.gradients(cids);
    const t0 = performance.now();
    const { loss, grads } = await model.gradients(cids);
    const ms = performance.now() - t0;
    cids.dispose();
    let worst = 0;
    for (const [name, g] of grads) worst = Math.max(worst, relL2(g.data, fx.get(`calib.grad.${name}`)!.data));
    const lossRel = Math.abs(loss - fj.calib_loss) / fj.calib_loss;
    t.diagnostic(`${label}: logits max|diff| ${d.toExponential(3)}, loss rel ${lossRel.toExponential(3)}, worst grad rel L2 ${worst.toExponential(3)}, fwd+bwd [10,64] ${ms.toFixed(0)} ms`);
    assert.ok(d < 1e-4 * maxLogit);
    assert.ok(lossRel < 1e-5);
    assert.ok(worst < 1e-3);
  } finally {
    model.dispose();
  }
}

test('cpu backend: selected by name, fixture numerics hold', async (t) => {
  const info = await initBackend('cpu');
  assert.equal(info.backend, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  t.diagnostic(describeBackend(info));
  if (!haveShared(t, 'hf', 'fixtures', 'fixturesJson')) return;
  await fixtureNumerics(t, 'cpu');
});

test('wasm backend loads from node_modules without network; fixture numerics hold', async (t) => {
  const info = await initBackend('wasm');
  assert.equal(info.backend, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  t.diagnostic(describeBackend(info));
  try {
    if (!haveShared(t, 'hf', 'fixtures', 'fixturesJson')) return;
    await fixtureNumerics(t, 'wasm');
  } finally {
    await initBackend('cpu');
  }
});

test('webgpu backend (when a Vulkan adapter exists): fixture numerics hold', async (t) => {
  let info;
  try {
    info = await initBackend('webgpu');
  } catch (e) {
    assert.ok(e instanceof LopperError, String(e));
    t.skip(`no WebGPU adapter here (${e.code}: ${e.message.split('\n')[0]})`);
    return;
  }
  t.diagnostic(describeBackend(info));
  try {
    if (!haveShared(t, 'hf', 'fixtures', 'fixturesJson')) return;
    await fixtureNumerics(t, `webgpu (${info.adapter})`);
  } finally {
    await initBackend('cpu');
  }
});

test('a requested backend that is not installed is an error, not a fallback', async () => {
  let installed = true;
  try {
    await import('@tensorflow/tfjs-node' as string);
  } catch {
    installed = false;
  }
  if (installed) return;
  await initBackend('cpu');
  await assert.rejects(initBackend('tensorflow'), (e: unknown) => {
    assert.ok(e instanceof LopperError);
    assert.equal(e.code, 'LP8050');
    assert.match(e.message, /tfjs-node/);
    return true;
  });
  assert.equal(tf.getBackend(), 'cpu');
  await assert.rejects(initBackend('tpu' as BackendKind), (e: unknown) => e instanceof LopperError && e.code === 'LP8050');
});

test('auto picks the first available backend and says what it skipped', async (t) => {
  const info = await initBackend('auto');
  t.diagnostic(`${describeBackend(info)}; skipped: ${(info.skipped ?? []).map((s) => s.split(':')[0]).join(', ') || 'none'}`);
  assert.equal(tf.getBackend(), info.backend);
  assert.ok(['tensorflow', 'webgpu', 'wasm', 'cpu'].includes(info.backend));
  if (info.backend !== 'tensorflow') assert.ok(info.skipped!.some((s) => s.startsWith('tensorflow')));
  await initBackend('cpu');
});
