// lopper's BPE trainer: the tokenizer.json it writes loads in @huggingface/tokenizers (through the model package's
// loader), encodes losslessly, compresses, and training is deterministic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hfTokenizerFromBytes } from '../../src/model/index.js';
import { BYTE_LEVEL_VOCAB_SIZE, tokenizerFiles, trainBpe } from '../../src/train/bpe.js';

const corpus = readFileSync(new URL('../../examples/data/brown-train.txt', import.meta.url), 'utf8').slice(0, 200_000);

test('BPE trained on Brown text: HF-loadable, lossless, compressing, deterministic', () => {
  const model = trainBpe(corpus, 512);
  assert.equal(model.tokens.length, 512);
  assert.equal(model.merges.length, 512 - BYTE_LEVEL_VOCAB_SIZE);
  assert.deepEqual(trainBpe(corpus, 512), model, 'same corpus, same tokenizer');
  const files = tokenizerFiles(model);
  const tok = hfTokenizerFromBytes(files.get('tokenizer.json')!, files.get('tokenizer_config.json'));
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  const sample = corpus.slice(10_000, 14_000) + ' naïve café — 42\n';
  const ids = tok.encode(sample);
  assert.equal(tok.decode(ids), sample);
  assert.ok(ids.every((id) => id >= 3 && id < 512), 'no special tokens from plain text');
  const bytes = new TextEncoder().encode(sample).length;
  assert.ok(ids.length < bytes * 0.5, `${ids.length} ids for ${bytes} bytes`);
  // The first merge joins the most frequent pair; with the tokenizer applying merges by rank, " the" is one token.
  assert.equal(tok.encode(' the').length, 1);
});

test('byte-level (vocab 259) has no merges and one id per byte', () => {
  const files = tokenizerFiles(trainBpe('hello world', BYTE_LEVEL_VOCAB_SIZE));
  const tok = hfTokenizerFromBytes(files.get('tokenizer.json')!, files.get('tokenizer_config.json'));
  assert.deepEqual(tok.encode('hé'), [3 + 104, 3 + 0xc3, 3 + 0xa9]);
  assert.throws(() => trainBpe('x', 100), /vocab_size must be an integer ≥ 259/);
});
