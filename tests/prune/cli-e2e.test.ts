// `lopper run` of a stories260K group → score → aggregate → prune recipe (built CLI: run `npx tsc -p .` first):
// the kept sets equal the float64 reference, every intermediate is cached, and changing the ratio reruns only prune.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { keep, kvGroupScores, mlpChannelScores, type Source } from './reference-f64.js';
import { MODEL, TINYSTORIES, loadReferenceInputs, mat, missingShared, readJson } from './stories260k-helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli/main.js');

function lopper(...args: string[]): { stages: Record<string, { status: string; output: string }> } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `lopper ${args.join(' ')}\n${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

test('lopper run: group → score → aggregate → prune on stories260K', async (t) => {
  const missing = missingShared();
  if (missing) return t.skip(`missing ${missing}`);
  if (!existsSync(cli)) return t.skip('missing dist/cli/main.js (run npx tsc -p .)');
  const dir = mkdtempSync(join(tmpdir(), 'lopper-prune-e2e-'));
  const recipe = join(dir, 'prune.yaml');
  writeFileSync(recipe, `version: 1
name: prune-e2e
seed: 42
runtime: { backend: cpu }
vars: { ratio: 0.25 }
models:
  base: { path: ${JSON.stringify(MODEL)} }
datasets:
  calib: { path: ${JSON.stringify(TINYSTORIES)}, format: text }
stages:
  groups: { kind: group, model: base, mode: block, attention: { layers: [1, 4] }, mlp: { layers: [1, 4] } }
  scores:
    kind: score
    groups: groups
    importance: taylor
    taylor: param_first
    calibration: { dataset: calib, samples: 10, seq_len: 64, sampling: sequential }
  importance: { kind: aggregate, scores: scores, reduce: sum, normalize: none }
  pruned: { kind: prune, importance: importance, ratio: "\${vars.ratio}", scope: local }
`);
  const first = lopper('run', recipe, '--json');
  assert.deepEqual(Object.values(first.stages).map((s) => s.status), ['ran', 'ran', 'ran', 'ran']);
  const { weights, fixture } = await loadReferenceInputs();
  const src: Source = { w: (n) => mat(weights.get(n)!), g: (n) => mat(fixture.get(`calib.grad.${n}`)!), f: () => undefined };
  const check = (out: string, ratio: number) => {
    const plan = readJson(join(out, 'plan.json'));
    for (const layer of [1, 2, 3]) {
      assert.deepEqual(plan.layers[layer].attention.keep_kv_heads, keep(kvGroupScores('param_first', src, layer, 8, 4, 8), ratio));
      assert.deepEqual(plan.layers[layer].mlp.keep, keep(mlpChannelScores('param_first', src, layer, 172), ratio));
    }
    assert.equal(readJson(join(out, 'model/config.json')).model_type, 'llama');
  };
  check(first.stages.pruned!.output, 0.25);
  // The group/score/aggregate outputs name the model they came from.
  assert.equal(readJson(join(first.stages.groups!.output, 'groups.json')).model, 'base');
  assert.equal(readJson(join(first.stages.importance!.output, 'importance.json')).model, 'base');

  const again = lopper('run', recipe, '--json');
  assert.deepEqual(Object.values(again.stages).map((s) => s.status), ['cached', 'cached', 'cached', 'cached']);
  const half = lopper('run', recipe, '--json', '--set', 'vars.ratio=0.5');
  assert.deepEqual(Object.fromEntries(Object.entries(half.stages).map(([k, s]) => [k, s.status])),
    { groups: 'cached', scores: 'cached', importance: 'cached', pruned: 'ran' });
  check(half.stages.pruned!.output, 0.5);
});
