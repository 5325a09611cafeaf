// Alpaca prompt + masking (alpaca-lora semantics), packing, collation, validation split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alpacaExample, alpacaPrompt, parseAlpaca } from '../../src/data/alpaca.js';
import { collate, documentStream, packStream, textStream } from '../../src/data/packing.js';
import { splitValidation } from '../../src/train/examples.js';

// A toy tokenizer: one id per character (code point + 10), so lengths are easy to reason about.
const encode = (s: string) => Array.from(s, (c) => c.codePointAt(0)! + 10);

test('alpaca prompt template is alpaca-lora templates/alpaca.json', () => {
  assert.equal(alpacaPrompt('Say hi.', ''),
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:\n');
  assert.equal(alpacaPrompt('Repeat.', 'a $1 b', 'x'),
    'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nRepeat.\n\n### Input:\na $1 b\n\n### Response:\nx');
});

test('train_on_inputs: false masks BOS + prompt; true masks nothing; cutoff truncates', () => {
  const rec = { instruction: 'I', input: 'in', output: 'OUT' };
  const promptLen = 1 + encode(alpacaPrompt('I', 'in')).length;
  const ex = alpacaExample(rec, encode, 1, 10_000, false);
  assert.equal(ex.ids[0], 1);
  assert.equal(ex.ids.length, promptLen + 3);
  assert.deepEqual([...ex.targets.subarray(0, promptLen)].every((t) => t === 0), true);
  assert.deepEqual([...ex.targets.subarray(promptLen)], [1, 1, 1]);
  const all = alpacaExample(rec, encode, 1, 10_000, true);
  assert.ok([...all.targets].every((t) => t === 1));
  const cut = alpacaExample(rec, encode, 1, 20, false);
  assert.equal(cut.ids.length, 20);
  assert.ok([...cut.targets].every((t) => t === 0), 'a record cut inside its prompt has no labels');
});

test('parseAlpaca reads JSONL and JSON arrays and names bad records', () => {
  assert.deepEqual(parseAlpaca('{"instruction":"a","output":"b"}\n\n{"instruction":"c","input":"d","output":"e"}\n', 'x.jsonl'),
    [{ instruction: 'a', input: '', output: 'b' }, { instruction: 'c', input: 'd', output: 'e' }]);
  assert.equal(parseAlpaca('[{"instruction":"a","output":"b"}]', 'x.json').length, 1);
  assert.throws(() => parseAlpaca('{"instruction":"a"}', 'x.jsonl'), /record 1 needs string fields/);
  assert.throws(() => parseAlpaca('{oops', 'x.jsonl'), /x\.jsonl:1: not JSON/);
});

test('packing: one BOS, consecutive blocks, tail dropped; documents get BOS…EOS', () => {
  const stream = textStream('abcdefg', encode, 1);
  assert.deepEqual(stream, [1, ...encode('abcdefg')]);
  const blocks = packStream(stream, 3);
  assert.equal(blocks.length, 2);
  assert.deepEqual(blocks.map((b) => b.ids), [[1, ...encode('ab')], encode('cde')]);
  assert.deepEqual(documentStream(['ab', 'c'], encode, 1, 2), [1, ...encode('ab'), 2, 1, ...encode('c'), 2]);
  assert.throws(() => packStream(stream, 1), /block size/);
});

test('collate right-pads and counts labels', () => {
  const a = { ids: [1, 5, 6, 7], targets: Uint8Array.from([0, 0, 1, 1]) };
  const b = { ids: [1, 9], targets: Uint8Array.from([1, 1]) };
  const batch = collate([a, b], 0);
  assert.equal(batch.seqLen, 4);
  assert.deepEqual([...batch.ids], [1, 5, 6, 7, 1, 9, 0, 0]);
  assert.deepEqual([...batch.targets], [0, 0, 1, 1, 0, 1, 0, 0]);
  assert.equal(batch.targetCount, 3);
  assert.equal(batch.tokenCount, 6);
});

test('validation split is seeded, disjoint and order-preserving', () => {
  const items = Array.from({ length: 50 }, (_, i) => i);
  const s1 = splitValidation(items, 7, 42);
  const s2 = splitValidation(items, 7, 42);
  assert.deepEqual(s1, s2);
  assert.equal(s1.val.length, 7);
  assert.equal(s1.train.length, 43);
  assert.deepEqual([...s1.train, ...s1.val].sort((x, y) => x - y), items);
  assert.deepEqual(s1.val, [...s1.val].sort((x, y) => x - y));
  assert.notDeepEqual(splitValidation(items, 7, 43).val, s1.val);
});
