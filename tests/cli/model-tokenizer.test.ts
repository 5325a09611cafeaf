// A `models:` entry's `tokenizer:` reaches every stage that loads the model, through the built CLI: a llama2.c .bin
// whose tok512.bin lives in another directory, and a Hugging Face directory without tokenizer files whose
// tokenizer.json lives elsewhere, run group → score (Taylor, which tokenizes calibration text) → aggregate → prune
// → evaluate, with the same perplexity as the Hugging Face copy; the tokenizer file is in the stages' files and
// cache keys. Needs `npx tsc -p .` first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const main = resolve('dist/cli/main.js');
const llama2c = resolve('../shared/models/stories260K-llama2c');
const hf = resolve('../shared/models/stories260K-hf');
const textSource = resolve('../shared/data/tinystories/tinystories_val_first.txt');
const skip = !existsSync(main) ? `${main} missing: run npx tsc -p . first`
  : [llama2c, hf, textSource].some((p) => !existsSync(p)) ? '../shared (stories260K llama2c + hf, tinystories) is absent' : false;

function lopper(cwd: string, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('a tokenizer kept in another directory reaches score, prune and evaluate; perplexity equals the HF copy', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lopper-tok-'));
  for (const sub of ['weights', 'tokenizers', 'hf-bare', 'data']) mkdirSync(join(dir, sub));
  copyFileSync(join(llama2c, 'stories260K.bin'), join(dir, 'weights', 'stories260K.bin'));
  copyFileSync(join(llama2c, 'tok512.bin'), join(dir, 'tokenizers', 'tok512.bin'));
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(hf, f), join(dir, 'hf-bare', f));
  copyFileSync(join(hf, 'tokenizer.json'), join(dir, 'tokenizers', 'tokenizer.json'));
  writeFileSync(join(dir, 'data', 'stories.txt'), readFileSync(textSource).subarray(0, 20_000));
  writeFileSync(join(dir, 'recipe.yaml'), `version: 1
name: tokenizer-elsewhere
runtime: { backend: wasm }
models:
  base: { path: weights/stories260K.bin, tokenizer: tokenizers/tok512.bin }
  bare: { path: hf-bare, tokenizer: tokenizers/tokenizer.json }
  hf: { path: ${JSON.stringify(hf)} }
datasets:
  stories: { path: data/stories.txt, format: text }
stages:
  groups: { kind: group, model: base, mode: block, attention: { layers: [1, 4] }, mlp: { layers: [1, 4] } }
  scores: { kind: score, groups: groups, importance: taylor, calibration: { dataset: stories, samples: 4, seq_len: 32 } }
  importance: { kind: aggregate, scores: scores }
  pruned: { kind: prune, importance: importance, ratio: 0.25 }
  report: { kind: evaluate, models: [base, bare, hf, pruned], perplexity: { datasets: [stories], seq_len: 64, limit: 8 } }
`);

  // The planner hashes and watches the tokenizer files.
  const plan = lopper(dir, 'plan', 'recipe.yaml', '--json');
  assert.equal(plan.code, 0, plan.stderr);
  const stages = (JSON.parse(plan.stdout) as { stages: { id: string; files: string[]; keyInputs: { models: Record<string, { files: Record<string, string> }> } }[] }).stages;
  const byId = new Map(stages.map((s) => [s.id, s]));
  for (const id of ['groups', 'scores']) {
    assert.ok(byId.get(id)!.files.includes(join(dir, 'tokenizers', 'tok512.bin')), `${id} reads tok512.bin`);
    assert.ok(byId.get(id)!.keyInputs.models.base!.files.tokenizer, `${id}'s key hashes the tokenizer`);
  }
  assert.ok(byId.get('report')!.files.includes(join(dir, 'tokenizers', 'tokenizer.json')), 'report reads the bare model\'s tokenizer.json');
  assert.ok(byId.get('report')!.keyInputs.models.bare!.files.tokenizer);

  const r = lopper(dir, 'run', 'recipe.yaml', '--json');
  assert.equal(r.code, 0, r.stderr);
  const table = (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { stages: Record<string, { status: string; output: string }> }).stages;
  for (const id of ['groups', 'scores', 'importance', 'pruned', 'report']) assert.equal(table[id]!.status, 'ran', id);
  const metrics = JSON.parse(readFileSync(join(table.report!.output, 'metrics.json'), 'utf8')) as { models: Record<string, { perplexity: { stories: number } }> };
  const ppl = (name: string) => metrics.models[name]!.perplexity.stories;
  assert.ok(Number.isFinite(ppl('hf')) && ppl('hf') > 1);
  assert.ok(Math.abs(ppl('base') - ppl('hf')) <= 1e-6 * ppl('hf'), `llama2c ${ppl('base')} vs hf ${ppl('hf')}`);
  assert.ok(Math.abs(ppl('bare') - ppl('hf')) <= 1e-6 * ppl('hf'), `bare ${ppl('bare')} vs hf ${ppl('hf')}`);
  assert.ok(Number.isFinite(ppl('pruned')), 'the pruned model carries the tokenizer on');
  // The calibration ids were tokenized with tok512 (BOS 1 first).
  const scores = JSON.parse(readFileSync(join(table.scores!.output, 'scores.json'), 'utf8')) as { calibration: { samples: number } };
  assert.equal(scores.calibration.samples, 4);

  // A different tokenizer file gives the stages that read it new keys.
  const tok = readFileSync(join(dir, 'tokenizers', 'tok512.bin'));
  tok[tok.length - 1] ^= 1;
  writeFileSync(join(dir, 'tokenizers', 'tok512.bin'), tok);
  const replan = lopper(dir, 'run', 'recipe.yaml', '--dry-run');
  assert.equal(replan.code, 0, replan.stderr);
  assert.match(replan.stdout, /^groups\s+will run\s+\w+\s+file base tokenizer \(.*tokenizers\/tok512\.bin\) changed$/m);
  assert.match(replan.stdout, /^report\s+will run .*file base tokenizer/m);
});
