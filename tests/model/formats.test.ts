// The llama2.c and GGUF copies of stories260K load to the same weights and logits as the HF directory, and their
// tokenizers (llama2.c tok512.bin, GGUF vocabulary) produce the HF tokenizer's ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, hfTokenizerFromBytes, loadModel, loadTokenizer, readSafetensors } from '../../src/model/index.js';
import { haveShared, ids2d, maxAbsDiff, paths, useCpu } from './shared-paths.js';

interface Fixtures { tokenizer: { text: string; ids: number[] }[]; tinystories_full_file: { n_ids: number; sha256_of_ids_as_int32_le: string; first_64: number[] } }

function sha(ids: number[]): string {
  return createHash('sha256').update(new Uint8Array(Int32Array.from(ids).buffer)).digest('hex');
}

test('HF tokenizer.json reproduces the fixture ids and the whole TinyStories file', async (t) => {
  if (!haveShared(t, 'hf', 'fixturesJson', 'tinystories')) return;
  const fj = JSON.parse(await readFile(paths.fixturesJson, 'utf8')) as Fixtures;
  const tok = await loadTokenizer(paths.hf);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.vocabSize, 512);
  for (const f of fj.tokenizer) assert.deepEqual([tok.bosId, ...tok.encode(f.text)], f.ids, f.text);
  const text = await readFile(paths.tinystories, 'utf8');
  const t0 = performance.now();
  const ids = [tok.bosId, ...tok.encode(text)];
  t.diagnostic(`HF tokenizer: ${ids.length} ids in ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(ids.length, fj.tinystories_full_file.n_ids);
  assert.deepEqual(ids.slice(0, 64), fj.tinystories_full_file.first_64);
  assert.equal(sha(ids), fj.tinystories_full_file.sha256_of_ids_as_int32_le);
});

for (const kind of ['llama2c', 'gguf'] as const) {
  test(`${kind} tokenizer reproduces the HF ids (fixtures, whole file) and converts to an equivalent tokenizer.json`, async (t) => {
    if (!haveShared(t, kind, 'tok512', 'fixturesJson', 'tinystories')) return;
    const fj = JSON.parse(await readFile(paths.fixturesJson, 'utf8')) as Fixtures;
    const tok = kind === 'llama2c' ? await loadTokenizer(paths.tok512) : (await loadModel(paths.gguf)).tokenizer!;
    assert.ok(tok);
    for (const f of fj.tokenizer) {
      assert.deepEqual([tok.bosId, ...tok.encode(f.text)], f.ids, f.text);
      assert.equal(tok.decode(tok.encode(f.text)), f.text);
    }
    const text = await readFile(paths.tinystories, 'utf8');
    const t0 = performance.now();
    const ids = [tok.bosId, ...tok.encode(text)];
    t.diagnostic(`${kind} tokenizer: ${ids.length} ids in ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(ids.length, fj.tinystories_full_file.n_ids);
    assert.equal(sha(ids), fj.tinystories_full_file.sha256_of_ids_as_int32_le);
    // The tokenizer.json it writes into saved models encodes like the original (first 300 lines + fixtures).
    const files = tok.files();
    const hf = hfTokenizerFromBytes(files.get('tokenizer.json')!, files.get('tokenizer_config.json'));
    const sample = text.split('\n').slice(0, 300).join('\n');
    assert.deepEqual(hf.encode(sample), tok.encode(sample));
    for (const f of fj.tokenizer) assert.deepEqual([hf.bosId, ...hf.encode(f.text)], f.ids);
  });
}

test('HF, llama2.c and GGUF copies give identical weights and logits', async (t) => {
  if (!haveShared(t, 'hf', 'llama2c', 'gguf', 'fixtures')) return;
  await useCpu();
  const fx = await readSafetensors(paths.fixtures);
  const fin = fx.get('forward.input_ids')!;
  const ids = ids2d(fin.data, fin.shape);
  const ref = fx.get('forward.logits')!.data;
  const maxLogit = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const logits: Float32Array[] = [];
  const hf = await loadModel(paths.hf);
  for (const p of [paths.hf, paths.llama2c, paths.gguf]) {
    const loaded = p === paths.hf ? hf : await loadModel(p);
    assert.deepEqual(loaded.config.layers, hf.config.layers);
    assert.equal(loaded.config.tieWordEmbeddings, true);
    assert.deepEqual([...loaded.weights.keys()], [...hf.weights.keys()]);
    for (const [name, w] of hf.weights) assert.equal(maxAbsDiff(loaded.weights.get(name)!.data, w.data), 0, `${loaded.format} ${name}`);
    const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
    const l = model.logits(ids);
    logits.push((await l.data()) as Float32Array);
    l.dispose();
    model.dispose();
    const d = maxAbsDiff(logits.at(-1)!, ref);
    t.diagnostic(`${loaded.format}: logits max |diff| vs transformers ${d.toExponential(3)}`);
    assert.ok(d < 1e-4 * maxLogit);
  }
  assert.equal(maxAbsDiff(logits[1]!, logits[0]!), 0);
  assert.equal(maxAbsDiff(logits[2]!, logits[0]!), 0);
  tf.dispose(ids);
});
