// End to end through the built CLI: group → score → aggregate → prune, then evaluate [base, pruned] on stories260K
// with small limits. Needs `npx tsc -p .` first (npm test builds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Tokenizer } from '@huggingface/tokenizers';
import { ReferenceLlama } from './reference-llama.js';

const ROOT = join(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli/main.js');
const SHARED = join(ROOT, '../shared');
const MODEL = join(SHARED, 'models/stories260K-hf');
const TEXT = join(SHARED, 'data/tinystories/tinystories_val_first.txt');
const ARC = join(SHARED, 'data/zeroshot/ARC-Easy.jsonl');
const missing = [CLI, MODEL, TEXT, ARC].find((p) => !existsSync(p));

/** The first `windows` windows of 128 ids with an independent tokenizer instance (the text's start suffices). */
function firstWindows(windows: number): Int32Array {
  const tok = new Tokenizer(JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(join(MODEL, 'tokenizer_config.json'), 'utf8')));
  const ids = [1, ...tok.encode(readFileSync(TEXT, 'utf8').slice(0, 8 * windows * 128), { add_special_tokens: false }).ids];
  assert.ok(ids.length > windows * 128 + 64);
  return Int32Array.from(ids.slice(0, windows * 128));
}

function referencePpl(modelDir: string, ids: Int32Array): number {
  const ref = new ReferenceLlama(modelDir);
  let nll = 0;
  for (let w = 0; w < ids.length / 128; w++) for (const lp of ref.tokenLogProbs(ids.subarray(w * 128, (w + 1) * 128))) nll -= lp;
  return Math.exp(nll / ((ids.length / 128) * 127));
}

test('lopper run: evaluate [base, pruned] prints the table and writes metrics.json with both models', { skip: missing && `missing ${missing} (build with npx tsc -p .)` }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lopper-eval-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'recipe.yaml'), `version: 1
name: eval-e2e
runtime: { backend: wasm }
models:
  base: { path: ${JSON.stringify(MODEL)} }
datasets:
  stories: { path: ${JSON.stringify(TEXT)}, format: text }
  arc_easy: { path: ${JSON.stringify(ARC)}, format: multiple-choice, template: arc_easy }
stages:
  groups: { kind: group, model: base, mode: block, attention: { layers: [1, 4] }, mlp: { layers: [1, 4] } }
  scores: { kind: score, groups: groups, importance: l2 }
  importance: { kind: aggregate, scores: scores, reduce: sum }
  pruned: { kind: prune, importance: importance, ratio: 0.5 }
  report:
    kind: evaluate
    models: [base, pruned]
    perplexity: { datasets: [stories], seq_len: 128, limit: 4 }
    zero_shot: { tasks: [{ dataset: arc_easy, limit: 8 }] }
    speed: { seq_len: 32, iterations: 2 }
`);
  const r = spawnSync(process.execPath, [CLI, 'run', join(dir, 'recipe.yaml'), '--json'], { cwd: dir, encoding: 'utf8', timeout: 240_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  const out = r.stdout + r.stderr;
  const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  const metrics = JSON.parse(await readFile(join(last.stages.report.output, 'metrics.json'), 'utf8'));
  assert.deepEqual(Object.keys(metrics.models), ['base', 'pruned']);
  const { base, pruned } = metrics.models;

  const ids = firstWindows(4);
  const expectedBase = referencePpl(MODEL, ids);
  const expectedPruned = referencePpl(join(last.stages.pruned.output, 'model'), ids);
  assert.ok(Math.abs(base.perplexity.stories / expectedBase - 1) < 1e-5, `base ${base.perplexity.stories} vs ${expectedBase}`);
  assert.ok(Math.abs(pruned.perplexity.stories / expectedPruned - 1) < 1e-5, `pruned ${pruned.perplexity.stories} vs ${expectedPruned}`);
  // HF transformers float64 on the first 8 ARC-Easy records: 2 right by acc and by acc_norm.
  assert.deepEqual(base.zero_shot, { arc_easy: { acc: 0.25, acc_norm: 0.25 } });
  // samples.jsonl: one line per model and question, whose predictions make up metrics.json's accuracies.
  const samples = (await readFile(join(last.stages.report.output, 'samples.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(samples.length, 16);
  for (const model of ['base', 'pruned']) {
    const mine = samples.filter((x) => x.model === model);
    assert.deepEqual(mine.map((x) => x.line), [1, 2, 3, 4, 5, 6, 7, 8]);
    for (const x of mine) assert.equal(x.acc, x.scores.indexOf(Math.max(...x.scores)));
    for (const metric of ['acc', 'acc_norm'] as const) {
      assert.equal(mine.filter((x) => x[metric] === x.label).length / 8, metrics.models[model].zero_shot.arc_easy[metric]);
    }
  }
  const plan = JSON.parse(await readFile(join(last.stages.pruned.output, 'plan.json'), 'utf8'));
  assert.equal(base.params, plan.params_before);
  assert.equal(pruned.params, plan.params_after);
  assert.ok(base.tokens_per_second > 0 && pruned.tokens_per_second > 0);
  assert.match(out, /model +params +MACs@128 +stories ppl +arc_easy acc_norm +average +tokens\/s/);
  assert.match(out, /pruned +\d+\.\d+K \(−\d+\.\d%\)/);
  assert.match(out, /pruned keeps \d+\.\d% of base average accuracy, \d+\.\d% of its parameters/);
});
