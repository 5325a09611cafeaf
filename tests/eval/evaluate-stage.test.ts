// The evaluate stage module on a hand-made StageContext: stories260K under two names, small limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import stage, { evaluateParams } from '../../src/stages/evaluate.js';
import { initBackend } from '../../src/backend/index.js';
import { LopperError } from '../../src/errors/lopper-error.js';
import type { DatasetSpec, StageContext } from '../../src/stages/types.js';

const SHARED = join(import.meta.dirname, '../../../shared');
const MODEL = join(SHARED, 'models/stories260K-hf');
const LLAMA2C = join(SHARED, 'models/stories260K-llama2c');
const TEXT = join(SHARED, 'data/tinystories/tinystories_val_first.txt');
const ARC = join(SHARED, 'data/zeroshot/ARC-Easy.jsonl');
const WINO = join(SHARED, 'data/zeroshot/winogrande.jsonl');
const missing = [MODEL, LLAMA2C, TEXT, ARC, WINO].find((p) => !existsSync(p));

function context(params: Record<string, unknown>, outDir: string, datasets: Record<string, DatasetSpec>, models: Record<string, string>) {
  const logs: string[] = [];
  const progress: string[] = [];
  const ctx: StageContext = {
    id: 'report',
    params: { kind: 'evaluate', ...params },
    seed: 42,
    recipeDir: outDir,
    outDir,
    modelPath: (ref) => models[ref] ?? assert.fail(`unknown model ${ref}`),
    model: (ref) => ({ path: models[ref] ?? assert.fail(`unknown model ${ref}`) }),
    stageDir: () => assert.fail('no stage refs'),
    dataset: (name) => datasets[name] ?? assert.fail(`unknown dataset ${name}`),
    progress: {
      start: (phase, total) => progress.push(`start ${phase} ${total}`),
      tick: (n = 1) => progress.push(`tick ${n}`),
      note: (m) => progress.push(`note ${m}`),
    },
    signal: new AbortController().signal,
    log: (line) => logs.push(line),
  };
  return { ctx, logs, progress };
}

test('params: defaults of docs/recipe-fields.md and range checks', () => {
  const p = evaluateParams({ models: ['a'], perplexity: { datasets: ['d'] }, zero_shot: { tasks: [{ dataset: 't', limit: 3 }] } });
  assert.deepEqual(p, {
    models: ['a'], macs_seq_len: 128, speed: { seq_len: 128, batch_size: 1, iterations: 5 },
    perplexity: { datasets: ['d'], seq_len: 128, batch_size: 4 }, zero_shot: { batch_size: 16, tasks: [{ dataset: 't', limit: 3 }] },
  });
  assert.throws(() => evaluateParams({ models: [] }), (e: unknown) => e instanceof LopperError && e.code === 'LP5011');
  assert.throws(() => evaluateParams({ models: ['a'], perplexity: { datasets: ['d'], seq_len: 1 } }), (e: unknown) => e instanceof LopperError && /seq_len/.test(e.message));
  assert.throws(() => evaluateParams({ models: ['a'], zero_shot: { tasks: [{ dataset: 't', limit: 0 }] } }), (e: unknown) => e instanceof LopperError && /limit/.test(e.message));
});

test('evaluate [base, pruned] writes metrics.json with both models and logs the comparison table', { skip: missing && `missing ${missing}` }, async () => {
  await initBackend('wasm');
  const outDir = await mkdtemp(join(tmpdir(), 'lopper-evaluate-'));
  const datasets: Record<string, DatasetSpec> = {
    stories: { name: 'stories', path: TEXT, format: 'text', options: {} },
    arc_easy: { name: 'arc_easy', path: ARC, format: 'multiple-choice', template: 'arc_easy', options: {} },
    winogrande: { name: 'winogrande', path: WINO, format: 'multiple-choice', template: 'winogrande', options: {} },
  };
  // The same weights as llama2.c .bin + tok512.bin: a second format and a second tokenizer implementation.
  const { ctx, logs, progress } = context(
    {
      models: ['base', 'pruned'],
      perplexity: { datasets: ['stories'], seq_len: 128, batch_size: 4, limit: 6 },
      zero_shot: { tasks: [{ dataset: 'arc_easy', limit: 16 }, { dataset: 'winogrande', limit: 16 }], batch_size: 8 },
      speed: { seq_len: 32, batch_size: 1, iterations: 2 },
      macs_seq_len: 128,
    },
    outDir,
    datasets,
    { base: MODEL, pruned: join(LLAMA2C, 'stories260K.bin') },
  );
  assert.equal(stage.kind, 'evaluate');
  assert.equal(stage.outputKind, 'metrics');
  const result = await stage.run(ctx);
  const metrics = JSON.parse(await readFile(join(outDir, 'metrics.json'), 'utf8'));
  assert.deepEqual(Object.keys(metrics.models), ['base', 'pruned']);
  for (const name of ['base', 'pruned']) {
    const m = metrics.models[name];
    // 64·512 embeddings (tied) + 5 × (12,288 attention + 33,024 MLP + 128 norms) + 64 final norm.
    assert.equal(m.params, 260_032);
    // First 6 windows of 128: the float64 reference of tests/eval/reference-llama.ts gives 4.38369516598987.
    assert.ok(Math.abs(m.perplexity.stories / 4.38369516598987 - 1) < 1e-5, `ppl ${m.perplexity.stories}`);
    // First 16 records, HF transformers float64 reference: arc_easy 2 right by acc and acc_norm, winogrande 8.
    assert.deepEqual(m.zero_shot, { arc_easy: { acc: 2 / 16, acc_norm: 2 / 16 }, winogrande: { acc: 0.5 } });
    assert.ok(m.tokens_per_second > 0);
    assert.equal(typeof m.macs, 'number');
  }
  assert.deepEqual(metrics.tasks.winogrande, { template: 'winogrande', metric: 'acc', questions: 16 });
  assert.deepEqual((result as { summary: { models: Record<string, unknown> } }).summary.models.base, {
    params: 260_032, perplexity: metrics.models.base.perplexity, zero_shot: metrics.models.base.zero_shot, tokens_per_second: metrics.models.base.tokens_per_second,
  });
  const header = logs.findIndex((l) => l.startsWith('model '));
  assert.ok(header >= 0, logs.join('\n'));
  assert.match(logs[header]!, /stories ppl +arc_easy acc_norm +winogrande acc +average +tokens\/s/);
  assert.match(logs[header + 3]!, /^pruned .*\(\+0\.0%\)/);
  assert.match(logs.at(-1)!, /^pruned keeps 100\.0% of base average accuracy/);
  assert.ok(progress.includes('start base stories windows 6'), progress.join('\n'));
  assert.ok(progress.includes('start pruned arc_easy questions 16'));
});

test('zero-shot tasks must be multiple-choice datasets; a user template with an unknown placeholder fails early', { skip: missing && `missing ${missing}` }, async () => {
  const outDir = await mkdtemp(join(tmpdir(), 'lopper-evaluate-'));
  const bad = context({ models: ['base'], zero_shot: { tasks: [{ dataset: 'stories' }] } }, outDir, { stories: { name: 'stories', path: TEXT, format: 'text', options: {} } }, { base: MODEL });
  await assert.rejects(stage.run(bad.ctx), (e: unknown) => e instanceof LopperError && e.code === 'LP5007');
  const mc = join(outDir, 'mc.jsonl');
  await writeFile(mc, '{"question": "q", "choices": ["a", "b"], "label": 0}\n');
  const tpl = context(
    { models: ['base'], zero_shot: { tasks: [{ dataset: 'mine' }] } },
    outDir,
    { mine: { name: 'mine', path: mc, format: 'multiple-choice', options: { template: { context: '{passage}', continuation: ' {choice}' } } } },
    { base: MODEL },
  );
  await assert.rejects(stage.run(tpl.ctx), (e: unknown) => e instanceof LopperError && e.code === 'LP5004');
  const wino = join(outDir, 'wino.jsonl');
  await writeFile(wino, '{"question": "a _ b", "choices": ["x", "y"], "label": 0}\n{"question": "no blank", "choices": ["x", "y"], "label": 1}\n');
  const blank = context(
    { models: ['base'], zero_shot: { tasks: [{ dataset: 'w' }] } },
    outDir,
    { w: { name: 'w', path: wino, format: 'multiple-choice', template: 'winogrande', options: {} } },
    { base: '/nonexistent-model-is-never-loaded' },
  );
  await assert.rejects(stage.run(blank.ctx), (e: unknown) => e instanceof LopperError && e.code === 'LP5005' && e.location?.file === wino && e.location.line === 2);
});
