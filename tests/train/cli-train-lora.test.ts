// `lopper run` of a tiny train → lora-finetune recipe (built CLI: run `npx tsc -p .` first): both stages run and
// write their contract files, the JSON summary names them, and a second run is fully cached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tempDir } from '../lora/helpers.js';

const root = path.resolve(import.meta.dirname, '../..');
const cli = path.join(root, 'dist/cli/main.js');

function lopper(...args: string[]): { stages: Record<string, { status: string; output: string }> } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `lopper ${args.join(' ')}\n${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

test('lopper run: train → lora-finetune', (t) => {
  if (!existsSync(cli)) return t.skip('missing dist/cli/main.js (run npx tsc -p .)');
  const dir = tempDir('cli-train');
  writeFileSync(path.join(dir, 'text.txt'), readFileSync(path.join(root, 'examples/data/brown-train.txt'), 'utf8').slice(0, 30_000));
  writeFileSync(path.join(dir, 'instructions.jsonl'), readFileSync(path.join(root, 'examples/data/instructions.jsonl'), 'utf8').split('\n').slice(0, 40).join('\n'));
  const recipe = path.join(dir, 'tiny.yaml');
  writeFileSync(recipe, `version: 1
name: tiny-train-lora
seed: 7
runtime: { backend: wasm }
datasets:
  text: { path: text.txt, format: text }
  instructions: { path: instructions.jsonl, format: alpaca }
stages:
  base:
    kind: train
    dataset: text
    config: { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 512 }
    tokenizer: { kind: bpe, vocab_size: 300 }
    train: { max_steps: 6, lr: 1.0e-2, batch_size: 8, micro_batch_size: 4, cutoff_len: 32, warmup_steps: 1, val_size: 4 }
  tuned:
    kind: lora-finetune
    model: base
    dataset: instructions
    lora: { r: 4, alpha: 8, dropout: 0.05, targets: [q_proj, v_proj, down_proj] }
    train: { max_steps: 3, lr: 1.0e-3, batch_size: 4, micro_batch_size: 2, cutoff_len: 256, warmup_steps: 1, val_size: 4 }
`);
  const first = lopper('run', recipe, '--json');
  assert.equal(first.stages.base?.status, 'ran');
  assert.equal(first.stages.tuned?.status, 'ran');
  const base = first.stages.base!.output;
  const tuned = first.stages.tuned!.output;
  for (const f of ['model/config.json', 'model/model.safetensors', 'model/tokenizer.json', 'train.jsonl']) assert.ok(existsSync(path.join(base, f)), `base/${f}`);
  for (const f of ['model/config.json', 'model/model.safetensors', 'adapter/adapter_config.json', 'adapter/adapter_model.safetensors', 'train.jsonl']) assert.ok(existsSync(path.join(tuned, f)), `tuned/${f}`);
  const log = readFileSync(path.join(tuned, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(log.filter((r) => 'loss' in r).map((r) => r.step), [1, 2, 3]);
  for (const r of log.filter((r) => 'loss' in r)) assert.deepEqual(Object.keys(r).sort(), ['loss', 'lr', 'step', 'tokens_per_second']);
  const adapterConfig = JSON.parse(readFileSync(path.join(tuned, 'adapter/adapter_config.json'), 'utf8'));
  assert.deepEqual(adapterConfig.target_modules, ['q_proj', 'v_proj', 'down_proj']);
  const second = lopper('run', recipe, '--json');
  assert.equal(second.stages.base?.status, 'cached');
  assert.equal(second.stages.tuned?.status, 'cached');
});
