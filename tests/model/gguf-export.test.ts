// GGUF export checked with a real client, llama.cpp through node-llama-cpp (CPU): the dense stories260K, a
// uniformly pruned one (MLP of every layer) and an LLM-Pruner-style heterogeneous one (heads and MLP of layers 1–3)
// are exported through `lopper export`; llama.cpp loads each, tokenizes TinyStories text as lopper does, and its
// teacher-forced perplexity over the same ids equals lopper's (≤ 1e-3 relative for f32, ≤ 1e-2 for f16 and q8_0).
// lopper reads the files back (F16, BF16, Q8_0 dequantized) with the same config.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backend/index.js';
import { loadModel } from '../../src/model/index.js';
import { LlamaModel } from '../../src/model/llama.js';
import { readGguf } from '../../src/model/gguf.js';
import { ggufVocab, writeGguf } from '../../src/model/gguf-write.js';
import { LopperError } from '../../src/errors/lopper-error.js';
import { MODEL, TINYSTORIES, missingShared } from '../prune/stories260k-helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli/main.js');

type Llama = Awaited<ReturnType<typeof import('node-llama-cpp').getLlama>>;
let llama: Llama | null = null;
let skip: string | false = missingShared() ? `missing ${missingShared()}` : !existsSync(cli) ? 'missing dist/cli/main.js (run npx tsc -p .)' : false;
const dir = mkdtempSync(join(tmpdir(), 'lopper-gguf-'));

before(async () => {
  if (skip) return;
  try {
    const { getLlama } = await import('node-llama-cpp');
    llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
  } catch (e) {
    skip = `node-llama-cpp is not usable here (${(e as Error).message.split('\n')[0]})`;
  }
  await initBackend('cpu');
});
after(async () => { await llama?.dispose(); });

function lopper(...args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, `lopper ${args.join(' ')}\n${r.stderr}`);
  return r.stdout;
}

const recipe = (name: string, groups: string) => `version: 1
name: ${name}
runtime: { backend: cpu }
models:
  base: { path: ${JSON.stringify(MODEL)} }
datasets:
  calib: { path: ${JSON.stringify(TINYSTORIES)}, format: text }
stages:
  groups: { kind: group, model: base, mode: block, ${groups} }
  scores: { kind: score, groups: groups, importance: taylor, taylor: param_first, calibration: { dataset: calib, samples: 4, seq_len: 32 } }
  importance: { kind: aggregate, scores: scores, reduce: sum, normalize: none }
  pruned: { kind: prune, importance: importance, ratio: 0.5, scope: local }
`;

/** lopper's perplexity of `ids` (one window) on the exported model's source, and llama.cpp's on the GGUF file. */
async function perplexities(sourceDir: string, gguf: string, text: string): Promise<{ lopper: number; llamaCpp: number; sameTokens: boolean }> {
  const loaded = await loadModel(sourceDir);
  const ids = [loaded.tokenizer!.bosId, ...loaded.tokenizer!.encode(text)].slice(0, 128);
  const model = LlamaModel.fromWeights(loaded.config, loaded.weights);
  const input = tf.tensor2d(Int32Array.from(ids), [1, ids.length], 'int32');
  const lp = (await model.tokenLogProbs(input).data()) as Float32Array;
  input.dispose();
  model.dispose();
  let nll = 0;
  for (const v of lp) nll -= v;
  const m = await llama!.loadModel({ modelPath: gguf });
  try {
    const sameTokens = JSON.stringify(Array.from(m.tokenize(text))) === JSON.stringify(loaded.tokenizer!.encode(text));
    const ctx = await m.createContext({ contextSize: 256 });
    const res = await ctx.getSequence().controlledEvaluate(ids.map((t, i) => (i < ids.length - 1 ? [t, { generateNext: { probabilities: true } }] : t)));
    let theirs = 0;
    for (let i = 0; i < ids.length - 1; i++) theirs -= Math.log(res[i]!.next!.probabilities!.get(ids[i + 1]!)!);
    await ctx.dispose();
    return { lopper: Math.exp(nll / lp.length), llamaCpp: Math.exp(theirs / (ids.length - 1)), sameTokens };
  } finally {
    await m.dispose();
  }
}

const text = () => readFileSync(TINYSTORIES, 'utf8').slice(0, 2000);

/**
 * node-llama-cpp's prebuilt CPU backend runs Q8_0 matmuls on AMX tiles where the CPU has them, and those give wrong
 * results on these small models: the heterogeneous Q8_0 export measured perplexity 677 (22,553 in another run)
 * through the sapphirerapids variant and 19.30 through the icelake variant of the same llama.cpp build, against
 * lopper's 19.19 (llama.cpp's AMX kernels have known wrong results, ggml-org/llama.cpp#16315). There the Q8_0 files
 * are still read back by lopper below, but not compared through llama.cpp.
 */
const llamaCppQ8Unreliable = existsSync('/proc/cpuinfo') && /\bamx_int8\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));

/** Compares llama.cpp's perplexity with lopper's, unless llama.cpp cannot compute `dtype` right on this CPU. */
async function checkInLlamaCpp(t: TestContext, what: string, source: string, gguf: string, dtype: string, tolerance: number): Promise<void> {
  if (dtype === 'q8_0' && llamaCppQ8Unreliable) {
    t.diagnostic(`${what} q8_0: not compared through llama.cpp on this CPU (its AMX Q8_0 kernels; see llamaCppQ8Unreliable)`);
    return;
  }
  const p = await perplexities(source, gguf, text());
  assert.ok(p.sameTokens, `${what} ${dtype}: llama.cpp tokenizes the text as lopper does`);
  const rel = Math.abs(p.llamaCpp - p.lopper) / p.lopper;
  assert.ok(rel <= tolerance, `${what} ${dtype}: llama.cpp ppl ${p.llamaCpp} vs lopper ${p.lopper} (${rel.toExponential(2)} relative)`);
}

for (const [name, groups, arch] of [
  ['dense', null, 'llama'],
  ['uniform', 'mlp: { layers: [0, 5] }', 'llama'],
  ['heterogeneous', 'attention: { layers: [1, 4] }, mlp: { layers: [1, 4] }', 'deci'],
] as const) {
  test(`lopper export (${name}) runs in llama.cpp with lopper's tokens and perplexity`, async (t) => {
    if (skip) return t.skip(skip);
    writeFileSync(join(dir, `${name}.yaml`), recipe(name, groups ?? 'mlp: { layers: [0, 5] }'));
    const target = groups === null ? 'base' : 'pruned';
    for (const [dtype, tolerance] of [['f32', 1e-3], ['f16', 1e-2], ['q8_0', 1e-2]] as const) {
      const out = join(dir, `${name}-${dtype}.gguf`);
      const result = JSON.parse(lopper('export', `${name}.yaml`, target, '--format', 'gguf', '--dtype', dtype, '-o', out, '--json').trim());
      assert.equal(result.architecture, arch);
      await checkInLlamaCpp(t, name, result.source, out, dtype, tolerance);
      // lopper reads its own export back, dequantized, with the same per-layer widths.
      const back = await readGguf(out);
      const source = await loadModel(result.source);
      assert.deepEqual(back.config.layers, source.config.layers);
      assert.equal(back.config.headDim, source.config.headDim);
    }
  });
}

test('lopper export of a model lopper trained (byte-level BPE tokenizer) runs in llama.cpp as gpt2 vocabulary', async (t) => {
  if (skip) return t.skip(skip);
  writeFileSync(join(dir, 'trained.yaml'), `version: 1
name: trained
runtime: { backend: cpu }
datasets:
  text: { path: ${JSON.stringify(TINYSTORIES)}, format: text }
stages:
  base:
    kind: train
    dataset: text
    config: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256 }
    tokenizer: { kind: bpe, vocab_size: 400 }
    train: { max_steps: 3, lr: 1.0e-3, batch_size: 4, micro_batch_size: 4, cutoff_len: 32 }
`);
  for (const [dtype, tolerance] of [['f32', 1e-3], ['q8_0', 1e-2]] as const) {
    const out = join(dir, `trained-${dtype}.gguf`);
    const result = JSON.parse(lopper('export', 'trained.yaml', 'base', '--dtype', dtype, '-o', out, '--json').trim());
    await checkInLlamaCpp(t, 'trained', result.source, out, dtype, tolerance);
    const back = await readGguf(out);
    const source = await loadModel(result.source);
    assert.deepEqual(back.tokenizer!.encode('Once upon a time.'), source.tokenizer!.encode('Once upon a time.'));
  }
});

test('exporting a checkpoint a tensor at a time writes the same bytes as from a weight map in memory', async (t) => {
  if (skip) return t.skip(skip);
  writeFileSync(join(dir, 'same.yaml'), recipe('same', 'mlp: { layers: [0, 5] }'));
  const streamed = join(dir, 'streamed.gguf');
  lopper('export', 'same.yaml', 'base', '--dtype', 'q8_0', '-o', streamed);
  const loaded = await loadModel(MODEL);
  const inMemory = join(dir, 'in-memory.gguf');
  await writeGguf(inMemory, { config: loaded.config, weights: loaded.weights, tokenizer: loaded.tokenizer!, name: 'base' }, 'q8_0');
  assert.ok(readFileSync(streamed).equals(readFileSync(inMemory)));
});

test('a layer pruned to nothing is refused with the layer named, before any file is written', async (t) => {
  if (skip) return t.skip(skip);
  const loaded = await loadModel(MODEL);
  const config = { ...loaded.config, layers: loaded.config.layers.map((l, i) => (i === 2 ? { ...l, intermediateSize: 0 } : l)) };
  const out = join(dir, 'empty-layer.gguf');
  await assert.rejects(writeGguf(out, { config, weights: loaded.weights, tokenizer: loaded.tokenizer!, name: 'x' }, 'f32'),
    (e: unknown) => e instanceof LopperError && e.code === 'LP3018' && /layer 2/.test(e.message));
  assert.equal(existsSync(out), false);
});

test('a tokenizer GGUF has no vocabulary kind for (WordPiece, a non-GPT-2 byte-level split) is refused by name', () => {
  const withJson = (json: unknown) => ({ files: () => new Map([['tokenizer.json', new TextEncoder().encode(JSON.stringify(json))]]) }) as never;
  const wordPiece = { model: { type: 'WordPiece', vocab: { a: 0 } } };
  const llama3 = { model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, pre_tokenizer: { type: 'Sequence' }, normalizer: null };
  for (const json of [wordPiece, llama3]) {
    assert.throws(() => ggufVocab(withJson(json), 'tok/tokenizer.json'), (e: unknown) => e instanceof LopperError && e.code === 'LP3018' && /tok\/tokenizer\.json/.test(e.message));
  }
});

test('export refuses what it cannot write, naming it, and leaves no file behind', async (t) => {
  if (skip) return t.skip(skip);
  writeFileSync(join(dir, 'bad.yaml'), recipe('bad', 'mlp: { layers: [0, 5] }'));
  const fail = (...args: string[]) => spawnSync(process.execPath, [cli, 'export', 'bad.yaml', ...args], { cwd: dir, encoding: 'utf8' });
  let r = fail('groups', '-o', 'x.gguf');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /LP7010.*"groups" is a group stage/);
  r = fail('nothing', '-o', 'x.gguf');
  assert.match(r.stderr, /LP7010.*"nothing" names no stage/);
  r = fail('base', '--format', 'hf', '--dtype', 'q8_0', '-o', 'x');
  assert.match(r.stderr, /LP7010.*q8_0/);
  r = fail('base', '--dtype', 'f8', '-o', 'x.gguf');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /f8/);
  r = fail('base', '-o', 'bad.yaml/x.gguf'); // under a file: the directory cannot be made
  assert.equal(r.status, 1);
  assert.match(r.stderr, /LP3016.*bad\.yaml/);
  assert.equal(existsSync(join(dir, 'x.gguf')), false);
});
