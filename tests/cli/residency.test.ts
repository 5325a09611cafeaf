// Model residency through `lopper run` (built CLI) on a bfloat16 copy of stories260K: the base is read from disk
// once for group, score, prune and evaluate; the pruned model is gathered on the device, written as bf16 shards of
// the source dtype, and evaluated from memory; a rerun from the evaluate stage reads both models from disk and gets
// exactly the same metrics (the resident copy equals the written file bit for bit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MODEL, TINYSTORIES, missingShared } from '../prune/stories260k-helpers.js';
import { loadModel, readSafetensorsHeader, saveModel } from '../../src/model/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli/main.js');

interface RunJson {
  stages: Record<string, { status: string; output: string }>;
  models?: { source: string; how: 'loaded' | 'derived' }[];
}

function lopper(...args: string[]): RunJson {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `lopper ${args.join(' ')}\n${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as RunJson;
}

test('lopper run reads a model once, derives the pruned one on the device and writes it in the source dtype', async (t) => {
  const missing = missingShared();
  if (missing) return t.skip(`missing ${missing}`);
  if (!existsSync(cli)) return t.skip('missing dist/cli/main.js (run npx tsc -p .)');
  const dir = mkdtempSync(join(tmpdir(), 'lopper-residency-'));
  const base = join(dir, 'base-bf16');
  await saveModel(base, await loadModel(MODEL), { dtype: 'bfloat16' });
  const recipe = join(dir, 'r.yaml');
  writeFileSync(recipe, `version: 1
name: residency
runtime: { backend: cpu }
models:
  base: { path: ${JSON.stringify(base)} }
datasets:
  calib: { path: ${JSON.stringify(TINYSTORIES)}, format: text }
stages:
  groups: { kind: group, model: base, mode: block, attention: { layers: [1, 4] }, mlp: { layers: [1, 4] } }
  scores: { kind: score, groups: groups, importance: taylor, taylor: param_first, calibration: { dataset: calib, samples: 4, seq_len: 32 } }
  importance: { kind: aggregate, scores: scores, reduce: sum, normalize: none }
  pruned: { kind: prune, importance: importance, ratio: 0.25, scope: local }
  report: { kind: evaluate, models: [base, pruned], perplexity: { datasets: [calib], seq_len: 64, limit: 6 }, speed: { iterations: 1 } }
`);
  const first = lopper('run', recipe, '--json');
  assert.deepEqual(Object.values(first.stages).map((s) => s.status), ['ran', 'ran', 'ran', 'ran', 'ran']);
  const pruned = join(first.stages.pruned!.output, 'model');
  assert.deepEqual(first.models?.map((m) => m.how), ['loaded', 'derived'], 'the base is read once; the pruned model is never read');
  assert.equal(first.models?.[0]?.source, base);

  const header = await readSafetensorsHeader(join(pruned, 'model.safetensors'));
  assert.deepEqual([...new Set([...header.tensors.values()].map((x) => x.dtype))], ['BF16'], 'bf16 in, bf16 out');
  assert.equal(JSON.parse(readFileSync(join(pruned, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');

  const again = lopper('run', recipe, '--from', 'report', '--json');
  assert.equal(again.stages.report!.status, 'ran');
  assert.deepEqual(again.models?.map((m) => m.how), ['loaded', 'loaded'], 'a run that starts at evaluate reads both models from disk');
  const metrics = (out: string) => {
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { models: Record<string, { perplexity: Record<string, number> }> };
    return Object.fromEntries(Object.entries(m.models).map(([k, v]) => [k, v.perplexity]));
  };
  assert.deepEqual(metrics(again.stages.report!.output), metrics(first.stages.report!.output), 'resident and reloaded models give the same numbers');
});
