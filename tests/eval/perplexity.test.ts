import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { perplexity, perplexityIds, perplexityText, windowCount } from '../../src/eval/perplexity.js';
import { LopperError } from '../../src/errors/lopper-error.js';
import { BigramModel, bigramTable, charTokenizer } from './fakes.js';

await tf.setBackend('cpu');

/** PPL written out directly from the protocol: windows of seqLen, tail dropped, first token of a window not predicted. */
function expectedPpl(model: BigramModel, ids: Int32Array, seqLen: number, windows: number): number {
  let nll = 0;
  for (let w = 0; w < windows; w++) for (let t = 1; t < seqLen; t++) nll -= model.logProb(ids[w * seqLen + t - 1]!, ids[w * seqLen + t]!);
  return Math.exp(nll / (windows * (seqLen - 1)));
}

test('ids are BOS + the whole text encoded once', () => {
  const tok = charTokenizer();
  assert.deepEqual([...perplexityIds(tok, 'ab\n\nc')], [1, ...tok.encode('ab\n\nc')]);
});

test('window count drops the tail', () => {
  assert.equal(windowCount(393020, 128), 3070);
  assert.equal(windowCount(256, 128), 2);
  assert.equal(windowCount(255, 128), 1);
  assert.equal(windowCount(127, 128), 0);
});

test('perplexity matches the protocol for several seq_len, batch sizes and limits', async () => {
  const model = new BigramModel(16, bigramTable(16, 7));
  const ids = Int32Array.from({ length: 203 }, (_, i) => (i * 5 + (i >> 3)) % 16);
  for (const seqLen of [2, 7, 16, 64]) {
    const windows = Math.floor(203 / seqLen);
    const expected = expectedPpl(model, ids, seqLen, windows);
    for (const batchSize of [1, 3, 4, 100]) {
      const r = await perplexity(model, ids, { seqLen, batchSize });
      assert.equal(r.windows, windows);
      assert.equal(r.tokens, windows * (seqLen - 1));
      assert.ok(Math.abs(r.perplexity / expected - 1) < 1e-6, `seq_len ${seqLen} batch ${batchSize}: ${r.perplexity} vs ${expected}`);
    }
    const limited = await perplexity(model, ids, { seqLen, batchSize: 2, limit: 2 });
    assert.equal(limited.windows, Math.min(2, windows));
    assert.equal(limited.windowsAvailable, windows);
    assert.ok(Math.abs(limited.perplexity / expectedPpl(model, ids, seqLen, limited.windows) - 1) < 1e-6);
  }
  model.dispose();
});

test('batches hold batch_size windows of seq_len, progress counts windows, nothing leaks', async () => {
  const model = new BigramModel(8, bigramTable(8));
  const ids = Int32Array.from({ length: 100 }, (_, i) => i % 8);
  const before = tf.memory().numTensors;
  const progress: [number, number][] = [];
  await perplexity(model, ids, { seqLen: 10, batchSize: 4, onProgress: (d, t) => progress.push([d, t]) });
  assert.deepEqual(model.shapes, [[4, 10], [4, 10], [2, 10]]);
  assert.deepEqual(progress, [[0, 10], [4, 10], [8, 10], [10, 10]]);
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
});

test('cancellation stops between batches', async () => {
  const model = new BigramModel(8, bigramTable(8));
  const controller = new AbortController();
  const ids = Int32Array.from({ length: 100 }, (_, i) => i % 8);
  await assert.rejects(
    perplexity(model, ids, { seqLen: 10, batchSize: 2, signal: controller.signal, onProgress: (d) => d >= 4 && controller.abort() }),
    (e: unknown) => (e as Error).name === 'AbortError',
  );
  assert.equal(model.calls, 2);
  model.dispose();
});

test('too little text and bad parameters are user errors', async () => {
  const model = new BigramModel(8, bigramTable(8));
  const ids = Int32Array.from({ length: 10 }, (_, i) => i % 8);
  await assert.rejects(perplexity(model, ids, { seqLen: 11, batchSize: 1 }), (e: unknown) => e instanceof LopperError && e.code === 'LP5008');
  await assert.rejects(perplexity(model, ids, { seqLen: 1, batchSize: 1 }), (e: unknown) => e instanceof LopperError && e.code === 'LP5011');
  await assert.rejects(perplexity(model, ids, { seqLen: 4, batchSize: 0 }), (e: unknown) => e instanceof LopperError && e.code === 'LP5011');
  model.dispose();
});

test('text datasets are read whole; jsonl datasets join their field with blank lines', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lopper-ppl-'));
  await writeFile(join(dir, 'a.txt'), 'one\n\ntwo\n');
  await writeFile(join(dir, 'b.jsonl'), '{"t": "one"}\n{"t": "two"}\n');
  assert.equal(await perplexityText({ name: 'a', path: join(dir, 'a.txt'), format: 'text', options: {} }), 'one\n\ntwo\n');
  assert.equal(await perplexityText({ name: 'b', path: join(dir, 'b.jsonl'), format: 'jsonl', options: { field: 't' } }), 'one\n\ntwo');
  await assert.rejects(
    perplexityText({ name: 'b', path: join(dir, 'b.jsonl'), format: 'jsonl', options: {} }),
    (e: unknown) => e instanceof LopperError && e.code === 'LP5002' && e.location?.line === 1,
  );
  await assert.rejects(
    perplexityText({ name: 'c', path: join(dir, 'b.jsonl'), format: 'multiple-choice', options: {} }),
    (e: unknown) => e instanceof LopperError && e.code === 'LP5007',
  );
});
