// `lopper run` of the four methods side by side as a user runs them (built CLI: run `npx tsc -p .` first): LLM-Pruner
// (taylor), Wanda-sp (wanda), FLAP (flap, scope adaptive, bias compensation) and ShortGPT (block_influence) at the
// same target_params, one evaluate stage whose table lists all four; changing the FLAP metric reruns only FLAP's
// stages; GGUF export refuses the compensation biases; incompatible method options fail validation at their
// line:column with a nonzero exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MODEL, TINYSTORIES, missingShared, readJson } from './stories260k-helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli/main.js');
const TARGET = 214592; // stories260K's 260,032 parameters minus one decoder layer

function lopper(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8' });
}

/** The run's --json record, and its log (progress and the metrics table go to stderr under --json). */
function runJson(...args: string[]): { stages: Record<string, { status: string; output: string }>; log: string } {
  const r = lopper(...args);
  assert.equal(r.status, 0, `lopper ${args.join(' ')}\n${r.stderr}\n${r.stdout}`);
  return { ...JSON.parse(r.stdout.trim().split('\n').at(-1)!), log: r.stderr };
}

// Perplexity reads a 20 kB head of TinyStories (tokenizing the whole file takes seconds).
const recipeText = (dir: string, extra = '') => `version: 1
name: methods-e2e
seed: 42
runtime: { backend: cpu }
models:
  base: { path: ${JSON.stringify(MODEL)} }
datasets:
  calib: { path: ${JSON.stringify(TINYSTORIES)}, format: text }
  heldout: { path: ${JSON.stringify(join(dir, 'heldout.txt'))}, format: text }
stages:
  blocks: { kind: group, model: base, mode: block, attention: { layers: [0, 5] }, mlp: { layers: [0, 5] } }
  layers: { kind: group, model: base, mode: layer, layers: [0, 5] }
  taylor-scores: { kind: score, groups: blocks, importance: taylor, calibration: { dataset: calib, samples: 8, seq_len: 64 } }
  wanda-scores: { kind: score, groups: blocks, importance: wanda, calibration: { dataset: calib, samples: 8, seq_len: 64 } }
  flap-scores: { kind: score, groups: blocks, importance: flap, calibration: { dataset: calib, samples: 8, seq_len: 64 } }
  bi-scores: { kind: score, groups: layers, importance: block_influence, calibration: { dataset: calib, samples: 8, seq_len: 64 } }
  taylor-importance: { kind: aggregate, scores: taylor-scores }
  wanda-importance: { kind: aggregate, scores: wanda-scores }
  flap-importance: { kind: aggregate, scores: flap-scores }
  bi-importance: { kind: aggregate, scores: bi-scores }
  llm-pruner: { kind: prune, importance: taylor-importance, target_params: ${TARGET} }
  wanda-sp: { kind: prune, importance: wanda-importance, target_params: ${TARGET} }
  flap: { kind: prune, importance: flap-importance, target_params: ${TARGET}, scope: adaptive }
  shortgpt: { kind: prune, importance: bi-importance, target_params: ${TARGET} }
  report: { kind: evaluate, models: [base, llm-pruner, wanda-sp, flap, shortgpt], perplexity: { datasets: [heldout], seq_len: 64, limit: 4 }, speed: { seq_len: 16, iterations: 1 } }
${extra}`;

test('lopper run: LLM-Pruner, Wanda-sp, FLAP and ShortGPT at one parameter budget on stories260K', async (t) => {
  const missing = missingShared();
  if (missing) return t.skip(`missing ${missing}`);
  if (!existsSync(cli)) return t.skip('missing dist/cli/main.js (run npx tsc -p .)');
  const dir = mkdtempSync(join(tmpdir(), 'lopper-methods-'));
  const recipe = join(dir, 'methods.yaml');
  writeFileSync(join(dir, 'heldout.txt'), readFileSync(TINYSTORIES).subarray(0, 20_000));
  writeFileSync(recipe, recipeText(dir));
  const planned = lopper('plan', recipe);
  assert.equal(planned.status, 0, planned.stderr);
  for (const m of [/method: taylor param_first: LLM-Pruner/, /method: wanda: Wanda-sp/, /method: flap WIFV: FLAP/, /method: block_influence: ShortGPT/, /method: adaptive: FLAP's AL-AM/]) assert.match(planned.stdout, m);
  assert.match(lopper('explain', recipe, 'flap').stdout, /\n  method  adaptive: FLAP's AL-AM/);
  const first = runJson('run', recipe, '--json');
  assert.ok(Object.values(first.stages).every((s) => s.status === 'ran'));
  const methods = ['llm-pruner', 'wanda-sp', 'flap', 'shortgpt'];
  for (const m of methods) {
    const plan = readJson(join(first.stages[m]!.output, 'plan.json'));
    assert.ok(plan.params_after <= TARGET && plan.params_after > TARGET * 0.99, `${m}: ${plan.params_after} parameters`);
    assert.match(first.log, new RegExp(`report: ${m} +\\d`), `the metrics table lists ${m}`);
  }
  const metrics = readJson(join(first.stages.report!.output, 'metrics.json'));
  assert.deepEqual(Object.keys(metrics.models).sort(), ['base', ...methods].sort());
  assert.equal(readJson(join(first.stages.shortgpt!.output, 'model/config.json')).num_hidden_layers, 4);
  const flapConfig = readJson(join(first.stages.flap!.output, 'model/config.json'));
  assert.equal(flapConfig.mlp_bias, true, 'FLAP writes its compensation biases under mlp_bias');

  // Another FLAP metric: only FLAP's score, aggregate and prune (and the report reading it) run again.
  const ifv = runJson('run', recipe, '--json', '--set', 'stages.flap-scores.flap=IFV');
  const reran = Object.entries(ifv.stages).filter(([, s]) => s.status === 'ran').map(([k]) => k).sort();
  assert.deepEqual(reran, ['flap', 'flap-importance', 'flap-scores', 'report']);

  // GGUF export refuses the biases clearly (nothing written); bias_compensation: false writes a bias-free model.
  const gguf = join(dir, 'flap.gguf');
  const exported = lopper('export', recipe, 'flap', '--format', 'gguf', '-o', gguf);
  assert.notEqual(exported.status, 0);
  assert.match(exported.stderr, /error\[LP3018\].*projection biases.*nothing was written/);
  assert.equal(existsSync(gguf), false);
  const plain = runJson('run', recipe, '--json', '--set', 'stages.flap.bias_compensation=false');
  const plainConfig = readJson(join(plain.stages.flap!.output, 'model/config.json'));
  assert.deepEqual([plainConfig.attention_bias, plainConfig.mlp_bias], [false, false]);
  assert.equal(readJson(join(plain.stages.flap!.output, 'plan.json')).bias_compensation, undefined);
});

test('lopper validate: method options that do not fit their stages fail at the offending value', async (t) => {
  if (!existsSync(cli)) return t.skip('missing dist/cli/main.js (run npx tsc -p .)');
  const dir = mkdtempSync(join(tmpdir(), 'lopper-methods-bad-'));
  const recipe = join(dir, 'bad.yaml');
  writeFileSync(recipe, recipeText(dir, `  bi-on-blocks: { kind: score, groups: blocks, importance: block_influence, calibration: { dataset: calib } }
  flap-on-layers: { kind: score, groups: layers, importance: flap, calibration: { dataset: calib } }
  adaptive-layers: { kind: prune, importance: bi-importance, ratio: 0.2, scope: adaptive }
  taylor-compensated: { kind: prune, importance: taylor-importance, ratio: 0.2, bias_compensation: true }
`));
  const r = lopper('validate', recipe);
  assert.notEqual(r.status, 0);
  const out = r.stderr + r.stdout;
  // Stage lines 26–29 of the recipe; each error sits at its value's line:column.
  assert.match(out, /bad\.yaml:26:\d+ error\[LP2013\]: importance: block_influence scores whole decoder layers/);
  assert.match(out, /bad\.yaml:27:\d+ error\[LP2013\]: importance: flap scores attention heads/);
  assert.match(out, /bad\.yaml:28:\d+ error\[LP2013\]: scope: adaptive/);
  assert.match(out, /bad\.yaml:29:\d+ error\[LP2013\]: bias_compensation needs the mean inputs/);
  assert.doesNotMatch(out, /\n\s+at .+:\d+:\d+\)?\n/, 'no stack trace');
});
