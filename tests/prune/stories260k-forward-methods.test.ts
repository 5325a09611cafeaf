// stories260K (5 layers, GQA 8/4 heads): the forward-statistics methods through the group → score → aggregate →
// prune stages against tests/prune/reference-forward-f64.ts (float64, one sample at a time as the references run):
// Wanda-sp scores and kept sets, FLAP's standardized scores (WIFV, IFV, WIFN), AL-AM kept sets and compensation
// biases (and the biased model's log-probs against the float64 forward), ShortGPT's block influence and the layers
// it removes.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { LlamaModel, loadModel } from '../../src/model/index.js';
import { readSafetensors, type SafetensorsTensor } from '../../src/model/safetensors.js';
import group from '../../src/stages/group.js';
import score from '../../src/stages/score.js';
import aggregate from '../../src/stages/aggregate.js';
import prune from '../../src/stages/prune.js';
import { ReferenceLlama } from '../eval/reference-llama.js';
import { StageBench } from './stage-context.js';
import {
  blockInfluence, collectTaps, compensationBias, flapAlAmKeep, flapMetric, flapStats, meanAbsTimesRoot, perKvGroup,
  shortGptRemoved, standardized, wandaScaler, wandaSpKeep, type Metric, type Taps,
} from './reference-forward-f64.js';
import { MODEL, calibDataset, missingShared, readJson } from './stories260k-helpers.js';

const missing = missingShared();
const LAYERS = 5, HEADS = 8, KV = 4, D = 8, H = 64, I = 172;
const SAMPLES = 16, T = 64;
const calibration = { dataset: 'calib', samples: SAMPLES, seq_len: T, sampling: 'sequential' };
let bench: StageBench;
let weights: Map<string, SafetensorsTensor>;
let taps: Taps[];

before(async () => {
  if (missing) return;
  await tf.setBackend('cpu');
  weights = await readSafetensors(join(MODEL, 'model.safetensors'));
  bench = new StageBench({ base: MODEL }, calibDataset);
  await bench.run(group, 'blocks', { model: 'base', mode: 'block', attention: { layers: [0, 5] }, mlp: { layers: [0, 5] } });
  await bench.run(group, 'layers', { model: 'base', mode: 'layer', layers: [0, 5] });
  const wanda = await bench.run(score, 'wanda-scores', { groups: 'blocks', importance: 'wanda', calibration });
  // The reference reads the batch the stage calibrated on (calibration sampling is tested on its own).
  const ids = (await readSafetensors(join(wanda, 'scores.safetensors'))).get('calibration.input_ids')!.data;
  taps = collectTaps(new ReferenceLlama(MODEL), ids, SAMPLES, T);
});

const w = (name: string) => weights.get(name)!.data;
const oProj = (l: number) => w(`model.layers.${l}.self_attn.o_proj.weight`);
const downProj = (l: number) => w(`model.layers.${l}.mlp.down_proj.weight`);

async function memberScores(dir: string): Promise<Map<string, Float32Array>> {
  return new Map([...await readSafetensors(join(dir, 'scores.safetensors'))].map(([k, v]) => [k, v.data as Float32Array]));
}

function close(got: ArrayLike<number>, want: number[], what: string, rel = 1e-4): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const scale = Math.max(...want.map(Math.abs));
  want.forEach((x, i) => assert.ok(Math.abs(got[i]! - x) <= rel * scale, `${what}[${i}]: ${got[i]} vs ${x}`));
}

test('wanda (Wanda-sp): channel scores and per-layer kept sets equal the float64 reference', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  const scores = await memberScores(bench.outputs.get('wanda-scores')!);
  await bench.run(aggregate, 'wanda-importance', { scores: 'wanda-scores', reduce: 'sum', normalize: 'none' });
  for (const ratio of [0.25, 0.5]) {
    const plan = readJson(join(await bench.run(prune, `wanda-${ratio}`, { importance: 'wanda-importance', ratio, scope: 'local' }), 'plan.json'));
    for (let l = 0; l < LAYERS; l++) {
      const attn = meanAbsTimesRoot(oProj(l), H, HEADS * D, wandaScaler(taps[l]!.oProj, T, HEADS * D));
      const mlp = meanAbsTimesRoot(downProj(l), H, I, wandaScaler(taps[l]!.down, T, I));
      if (ratio === 0.25) {
        close(scores.get(`layers.${l}.attention/o_proj`)!, attn, `layer ${l} o_proj`);
        close(scores.get(`layers.${l}.mlp/down_proj`)!, mlp, `layer ${l} down_proj`);
        assert.equal(scores.has(`layers.${l}.attention/q_proj`), false, 'only the measured projection is scored');
      }
      assert.deepEqual(plan.layers[l].attention.keep_kv_heads, wandaSpKeep(perKvGroup(attn, HEADS, KV, D, 'sum'), ratio), `ratio ${ratio} layer ${l} heads`);
      assert.deepEqual(plan.layers[l].mlp.keep, wandaSpKeep(mlp, ratio), `ratio ${ratio} layer ${l} channels`);
    }
  }
});

/** The reference's standardized FLAP scores per layer: attention per channel (metric²) and MLP per channel. */
function flapReference(metric: Metric, l: number) {
  const sa = flapStats(taps[l]!.oProj, T, HEADS * D), sm = flapStats(taps[l]!.down, T, I);
  return {
    attn: standardized(flapMetric(metric, oProj(l), H, HEADS * D, sa).map((x) => x * x)),
    mlp: standardized(flapMetric(metric, downProj(l), H, I, sm)),
    attnMean: sa.baseline, mlpMean: sm.baseline,
  };
}

test('flap: WIFV / IFV / WIFN channel scores equal the float64 reference (standardized per layer)', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  for (const metric of ['WIFV', 'IFV', 'WIFN'] as const) {
    const dir = await bench.run(score, `flap-${metric}-scores`, { groups: 'blocks', importance: 'flap', flap: metric, calibration });
    const scores = await memberScores(dir);
    for (let l = 0; l < LAYERS; l++) {
      const ref = flapReference(metric, l);
      close(scores.get(`layers.${l}.attention/o_proj`)!, ref.attn, `${metric} layer ${l} o_proj`);
      close(scores.get(`layers.${l}.mlp/down_proj`)!, ref.mlp, `${metric} layer ${l} down_proj`);
      close(scores.get(`layers.${l}.attention/mean_input`)!, ref.attnMean, `layer ${l} o_proj mean input`, 1e-5);
    }
  }
});

test('flap: AL-AM kept sets, compensation biases and the biased model equal the float64 reference', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  const imp = readJson(join(await bench.run(aggregate, 'flap-importance', { scores: 'flap-WIFV-scores' }), 'importance.json'));
  const refs = Array.from({ length: LAYERS }, (_, l) => flapReference('WIFV', l));
  // AL-AM weights: a KV group's q/k/v/o weights (2·n_rep + 2)·d·H against an MLP channel's 3·H (FLAP: 512/3 for 7B).
  const kvWeight = ((2 * (HEADS / KV) + 2) * D * H) / (3 * H);
  const units = refs.flatMap((r, l) => [
    ...perKvGroup(r.attn, HEADS, KV, D, 'mean').map((score, u) => ({ key: `${l}.attention.${u}`, score, weight: kvWeight })),
    ...r.mlp.map((score, u) => ({ key: `${l}.mlp.${u}`, score, weight: 1 })),
  ]);
  for (let l = 0; l < LAYERS; l++) close(imp.layers[l].attention, perKvGroup(refs[l]!.attn, HEADS, KV, D, 'mean'), `layer ${l} KV group scores`);
  let headsRemoved = false;
  for (const ratio of [0.2, 0.35]) {
    const out = await bench.run(prune, `flap-${ratio}`, { importance: 'flap-importance', ratio, scope: 'adaptive' });
    const plan = readJson(join(out, 'plan.json'));
    const keep = flapAlAmKeep(units, ratio);
    const model = await readSafetensors(join(out, 'model/model.safetensors'));
    const config = readJson(join(out, 'model/config.json'));
    assert.equal(config.attention_bias, plan.bias_compensation.some((g: string) => g.endsWith('attention')));
    assert.equal(config.mlp_bias, true);
    for (let l = 0; l < LAYERS; l++) {
      const kv = plan.layers[l].attention.keep_kv_heads as number[], ch = plan.layers[l].mlp.keep as number[];
      assert.deepEqual(kv, [0, 1, 2, 3].filter((u) => keep.has(`${l}.attention.${u}`)), `ratio ${ratio} layer ${l} KV groups`);
      assert.deepEqual(ch, Array.from({ length: I }, (_, u) => u).filter((u) => keep.has(`${l}.mlp.${u}`)), `ratio ${ratio} layer ${l} channels`);
      const keptHeadChannels = new Set(kv.flatMap((g) => Array.from({ length: (HEADS / KV) * D }, (_, j) => g * (HEADS / KV) * D + j)));
      const down = model.get(`model.layers.${l}.mlp.down_proj.bias`)!.data;
      close(down, compensationBias(downProj(l), H, I, refs[l]!.mlpMean, new Set(ch)), `ratio ${ratio} layer ${l} down_proj bias`, 1e-5);
      if (config.attention_bias) {
        headsRemoved ||= kv.length < KV;
        close(model.get(`model.layers.${l}.self_attn.o_proj.bias`)!.data, compensationBias(oProj(l), H, HEADS * D, refs[l]!.attnMean, keptHeadChannels), `layer ${l} o_proj bias`, 1e-5);
        for (const p of ['q_proj', 'k_proj', 'v_proj']) assert.ok(model.get(`model.layers.${l}.self_attn.${p}.bias`)!.data.every((x) => x === 0), `${p} bias is zero`);
      }
      for (const p of ['gate_proj', 'up_proj']) assert.ok(model.get(`model.layers.${l}.mlp.${p}.bias`)!.data.every((x) => x === 0), `${p} bias is zero`);
    }
    assert.ok(plan.bias_compensation.length > 0);
    // The written model runs its biases in lopper as the float64 forward (which adds every bias it finds) does.
    const loaded = await loadModel(join(out, 'model'));
    const m = LlamaModel.fromWeights(loaded.config, loaded.weights);
    const ids = Array.from({ length: 32 }, (_, i) => (i * 37) % 512);
    const lp = tf.tidy(() => m.tokenLogProbs(tf.tensor2d(ids, [1, 32], 'int32')));
    close(await lp.data(), Array.from(new ReferenceLlama(join(out, 'model')).tokenLogProbs(ids)), 'biased model log-probs', 1e-5);
    lp.dispose();
    m.dispose();
  }
  assert.ok(headsRemoved, 'some ratio removes heads, so the o_proj compensation is checked');
});

test('block_influence (ShortGPT): per-layer BI and the removed layers equal the float64 reference', async (t) => {
  if (missing) return t.skip(`missing ${missing}`);
  await bench.run(score, 'bi-scores', { groups: 'layers', importance: 'block_influence', calibration });
  const imp = readJson(join(await bench.run(aggregate, 'bi-importance', { scores: 'bi-scores' }), 'importance.json'));
  const ref = blockInfluence(taps, T, H);
  close(Array.from({ length: LAYERS }, (_, l) => imp.layers[l].layer[0]), ref.map((s) => s / (SAMPLES * T)), 'BI', 1e-5);
  for (const n of [1, 2]) {
    const out = await bench.run(prune, `bi-${n}`, { importance: 'bi-importance', ratio: n / LAYERS });
    const plan = readJson(join(out, 'plan.json'));
    const removed = shortGptRemoved(ref, n);
    assert.deepEqual(plan.keep_layers, [0, 1, 2, 3, 4].filter((l) => !removed.includes(l)), `remove ${n}`);
    const config = readJson(join(out, 'model/config.json'));
    assert.equal(config.num_hidden_layers, LAYERS - n);
    // Renumbered: the model's layer j is the base's layer keep_layers[j].
    const model = await readSafetensors(join(out, 'model/model.safetensors'));
    plan.keep_layers.forEach((orig: number, j: number) => assert.deepEqual(model.get(`model.layers.${j}.mlp.down_proj.weight`)!.data, downProj(orig)));
  }
});
