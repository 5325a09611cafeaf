// lora-finetune on a structurally pruned stories260K with TinyStories text (../shared): validation loss goes down,
// base weights stay bit-identical, the merged model equals base + adapters, the PEFT export has PEFT's names, and an
// interrupted + resumed run ends exactly where an uninterrupted one does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, loadModel, readSafetensors } from '../../src/model/index.js';
import { LoraAdapters, type LoraTarget } from '../../src/lora/adapters.js';
import { mergeAdapters } from '../../src/lora/merge.js';
import { PEFT_PREFIX } from '../../src/lora/peft.js';
import { StageCancelled } from '../../src/errors/lopper-error.js';
import loraStage from '../../src/stages/lora-finetune.js';
import { TINYSTORIES, haveShared, maxAbsDiff, runStage, tempDir, useBackend, writePrunedStories, type Bench } from './helpers.js';
import { sharedResidency } from '../../src/model/residency.js';

const PARAMS = {
  model: 'pruned', dataset: 'stories',
  lora: { r: 8, alpha: 16, dropout: 0.05, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
  train: { max_steps: 16, lr: 2e-3, batch_size: 8, micro_batch_size: 4, cutoff_len: 64, warmup_steps: 2, val_size: 16, eval_every: 8, save_every: 4, grad_clip: 1.0 },
};

async function setup(): Promise<Bench> {
  await useBackend();
  const root = tempDir('lora');
  const pruned = await writePrunedStories(path.join(root, 'pruned'));
  const text = readFileSync(TINYSTORIES, 'utf8').slice(0, 30_000);
  writeFileSync(path.join(root, 'stories.txt'), text);
  return { root, models: { pruned }, datasets: { stories: { name: 'stories', path: path.join(root, 'stories.txt'), format: 'text', options: {} } } };
}

const lossOf = (log: string) => log.trim().split('\n').map((l) => JSON.parse(l));

test('LoRA on pruned stories260K: lower validation loss, frozen base, exact merge, PEFT names, resume = uninterrupted', { skip: haveShared ? false : 'missing ../shared/models/stories260K-hf or ../shared/data/tinystories' }, async () => {
  const bench = await setup();
  const baseBefore = await readFile(path.join(bench.models.pruned!, 'model.safetensors'));
  const tensorsBefore = tf.memory().numTensors;

  const { outDir, result } = await runStage(bench, loraStage, 'tuned', PARAMS);
  const summary = (result as { summary: Record<string, number> }).summary;
  const log = lossOf(await readFile(path.join(outDir, 'train.jsonl'), 'utf8'));
  const vals = log.filter((r) => 'val_loss' in r);
  assert.deepEqual(vals.map((r) => r.step), [0, 8, 16]);
  assert.ok(summary.best_val_loss! < summary.val_loss_before! - 0.02, `validation loss ${summary.val_loss_before} → ${summary.best_val_loss}`);
  const steps = log.filter((r) => 'loss' in r);
  assert.equal(steps.length, 16);
  for (const r of steps) assert.ok(Number.isFinite(r.loss) && r.lr >= 0 && r.tokens_per_second > 0);
  assert.equal(steps[0].lr, 0, 'HF warm-up: the first update uses lr 0');
  assert.ok(Math.abs(steps[1].lr - 1e-3) < 1e-12);
  sharedResidency().clear(); // the base stays resident for later stages until the residency lets it go
  assert.equal(tf.memory().numTensors, tensorsBefore, 'the stage frees every tensor it does not hand to the residency');

  // Base weights on disk untouched, and the merged model differs from them only in adapted projections.
  assert.deepEqual(await readFile(path.join(bench.models.pruned!, 'model.safetensors')), baseBefore);

  // PEFT adapter: names as peft 0.21 writes them, config fields.
  const adapterTensors = await readSafetensors(path.join(outDir, 'adapter', 'adapter_model.safetensors'));
  const reference = JSON.parse(readFileSync(new URL('./peft-keys.reference.json', import.meta.url), 'utf8')).keys as Record<string, number[]>;
  const pattern = (k: string) => k.replace(/layers\.\d+\./, 'layers.N.').replace(/(q|k|v|o|gate|up|down)_proj/, 'X_proj');
  const refPatterns = new Set(Object.keys(reference).map(pattern));
  for (const k of adapterTensors.keys()) assert.ok(refPatterns.has(pattern(k)), `PEFT name ${k}`);
  assert.ok(adapterTensors.has('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'));
  assert.equal(adapterTensors.size, 5 * 7 * 2);
  const cfg = JSON.parse(readFileSync(path.join(outDir, 'adapter', 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA'); assert.equal(cfg.r, 8); assert.equal(cfg.lora_alpha, 16); assert.equal(cfg.task_type, 'CAUSAL_LM');

  // Merged model logits = base + adapter logits within 1e-5, on tfjs-cpu (plain float32 loops; wasm's XNNPACK
  // matmul blocks the sums differently and lands at ~2e-5 on logits of magnitude ~18, i.e. 1e-6 relative).
  const trainingBackend = tf.getBackend();
  await import('@tensorflow/tfjs-backend-cpu');
  await tf.setBackend('cpu');
  const base = await loadModel(bench.models.pruned!);
  const merged = await loadModel(path.join(outDir, 'model'));
  const host = new Map([...adapterTensors].map(([k, t]) => [k.slice(PEFT_PREFIX.length), { shape: t.shape, data: t.data as Float32Array }]));
  const adapters = LoraAdapters.fromWeights(base.config, { r: 8, alpha: 16, dropout: 0.05, targets: PARAMS.lora.targets as LoraTarget[] }, host);
  const baseModel = LlamaModel.fromWeights(base.config, base.weights, { trainable: false });
  const mergedModel = LlamaModel.fromWeights(merged.config, merged.weights, { trainable: false });
  const ids = tf.tensor2d([[1, 403, 407, 261, 378, 435, 1000 % 512, 300, 301, 302, 17, 18]], [1, 12], 'int32');
  const withAdapters = baseModel.logits(ids, { linear: adapters.hook(null) });
  const fromMerged = mergedModel.logits(ids);
  const plain = baseModel.logits(ids);
  const diff = await maxAbsDiff(withAdapters, fromMerged);
  assert.ok(diff < 1e-5, `merged vs base+adapter logits differ by ${diff}`);
  assert.ok(await maxAbsDiff(withAdapters, plain) > 1e-3, 'the adapters changed the model');
  // The stage merges on the device in float32; the float64 host merge is the reference: equal up to float32 rounding
  // of the rank-r product, and bit for bit where nothing was adapted.
  const again = mergeAdapters(base.weights, adapters.modules, await adapters.weights(), adapters.scale);
  const adapted = new Set(adapters.modules.map((m) => `${m.name}.weight`));
  for (const [name, t] of again) {
    const got = merged.weights.get(name)!.data;
    if (!adapted.has(name)) { assert.deepEqual(got, t.data, name); continue; }
    let worst = 0, scale = 0;
    for (let i = 0; i < got.length; i++) { worst = Math.max(worst, Math.abs(got[i]! - t.data[i]!)); scale = Math.max(scale, Math.abs(t.data[i]!)); }
    assert.ok(worst <= 2 ** -22 * scale, `${name}: device merge differs from the float64 merge by ${worst} (max |w| ${scale})`);
  }
  tf.dispose([ids, withAdapters, fromMerged, plain]);
  adapters.dispose(); baseModel.dispose(); mergedModel.dispose();
  await tf.setBackend(trainingBackend);

  // Interrupt after 6 steps (checkpoint written on cancel), rerun: same log and same adapters as the run above.
  const checkpointDir = path.join(bench.root, 'ckpt');
  const controller = new AbortController();
  await assert.rejects(
    runStage(bench, loraStage, 'tuned', PARAMS, { checkpointDir, signal: controller.signal, onTick: (n) => { if (n === 6) controller.abort(); } }),
    StageCancelled,
  );
  const resumed = await runStage(bench, loraStage, 'tuned', PARAMS, { checkpointDir });
  assert.equal((resumed.result as { summary: Record<string, number> }).summary.resumed_from, 6);
  const log2 = lossOf(await readFile(path.join(resumed.outDir, 'train.jsonl'), 'utf8'));
  const strip = (rs: Record<string, number>[]) => rs.map(({ tokens_per_second: _t, ...r }) => r);
  assert.deepEqual(strip(log2), strip(log), 'resumed run logs the same losses, lrs and validation losses');
  assert.deepEqual(await readFile(path.join(resumed.outDir, 'adapter', 'adapter_model.safetensors')),
    await readFile(path.join(outDir, 'adapter', 'adapter_model.safetensors')));
});
