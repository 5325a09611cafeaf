import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { argmax, characterLength, encodeRequest, packQuestions, predictions, zeroShot } from '../../src/eval/zero-shot.js';
import { resolveTemplate } from '../../src/eval/templates.js';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { LopperError } from '../../src/errors/lopper-error.js';
import type { Tokenizer } from '../../src/model/types.js';
import type { MultipleChoiceRecord } from '../../src/data/jsonl.js';
import { BigramModel, bigramTable, charTokenizer } from './fakes.js';

await tf.setBackend('cpu');
const MODEL_DIR = join(import.meta.dirname, '../../../shared/models/stories260K-hf');

test('context ids are BOS + encode(context); continuation ids the rest of BOS + encode(context + continuation)', () => {
  const tok = charTokenizer();
  const e = encodeRequest(tok, { context: 'ab', continuation: ' cd' });
  assert.deepEqual(e.ids, [1, ...tok.encode('ab cd')]);
  assert.equal(e.start, 3);
  assert.equal(e.length, 3);
  assert.equal(e.prefixMatched, true);
});

/** A tokenizer that merges "a" + " " into one token, so a context ending in "a" is not a prefix of context + " …". */
const mergingTokenizer: Tokenizer = {
  ...charTokenizer(),
  encode: (text) => {
    const out: number[] = [];
    for (let i = 0; i < text.length; i++) {
      if (text[i] === 'a' && text[i + 1] === ' ') {
        out.push(60);
        i++;
      } else out.push(3 + (text.charCodeAt(i) % 50));
    }
    return out;
  },
};

test('when the context ids are not a prefix, the continuation is the tail after the context token count (lm-eval)', () => {
  const e = encodeRequest(mergingTokenizer, { context: 'xa', continuation: ' yz' });
  // whole = BOS, x, "a ", y, z; context = BOS, x, a → continuation = the whole's ids from index 3 (y, z) after the
  // context's own ids.
  const x = 3 + ('x'.charCodeAt(0) % 50);
  const a = 3 + ('a'.charCodeAt(0) % 50);
  const y = 3 + ('y'.charCodeAt(0) % 50);
  const z = 3 + ('z'.charCodeAt(0) % 50);
  assert.deepEqual(e, { ids: [1, x, a, y, z], start: 3, length: 2, prefixMatched: false, truncated: false });
  assert.throws(
    () => encodeRequest(mergingTokenizer, { context: 'xa', continuation: ' ' }),
    (err: unknown) => err instanceof LopperError && err.code === 'LP5006',
  );
});

test('requests longer than the model context are left-truncated as lm-evaluation-harness does', () => {
  const tok = charTokenizer();
  // BOS a b c d e f | g h with a context of 5: the model reads the last 6 ids (the 6th only as a target).
  const e = encodeRequest(tok, { context: 'abcdef', continuation: 'gh' }, 5);
  assert.deepEqual(e.ids, tok.encode('cdefgh'));
  assert.deepEqual([e.start, e.length, e.truncated], [4, 2, true]);
  // Exactly max_length + 1 ids: nothing is cut (every scored position still sees at most 5 ids).
  const whole = encodeRequest(tok, { context: 'abcd', continuation: 'e' }, 5);
  assert.deepEqual([whole.ids.length, whole.truncated], [6, false]);
  // A continuation longer than the context is scored over its last max_length ids.
  const long = encodeRequest(tok, { context: 'a', continuation: 'bcdefgh' }, 5);
  assert.deepEqual(long.ids, tok.encode('cdefgh'));
  assert.deepEqual([long.start, long.length, long.truncated], [1, 5, true]);
});

test('character length counts code points; argmax takes the first maximum', () => {
  assert.equal(characterLength(' naïve'), 6);
  assert.equal(characterLength(' 日本'), 3);
  assert.equal(characterLength('😀'), 1);
  assert.equal(argmax([1, 3, 3, 2]), 1);
  assert.equal(argmax([-5]), 0);
  // acc picks the larger sum; acc_norm divides by the continuation's character length (" ab" = 3, " abcdefg" = 8).
  assert.deepEqual(predictions([-6, -8], [' ab', ' abcdefg']), { acc: 0, acc_norm: 1 });
});

test('questions are packed whole into batches of at most batch_size sequences', () => {
  assert.deepEqual(packQuestions([4, 4, 4], 8), [[0, 1], [2]]);
  assert.deepEqual(packQuestions([4, 4, 4], 7), [[0], [1], [2]]);
  assert.deepEqual(packQuestions([5, 2, 3], 2), [[0], [1], [2]]);
  assert.deepEqual(packQuestions([2, 3, 2, 2], 100), [[0, 1, 2, 3]]);
});

function records(): MultipleChoiceRecord[] {
  const words = ['cat', 'dog', 'a fish', 'trees', 'sun', 'é', 'moon light', 'x'];
  return Array.from({ length: 13 }, (_, i) => {
    const n = 2 + (i % 3);
    return {
      question: `q${i} ${words[i % words.length]}?`,
      choices: Array.from({ length: n }, (_, k) => words[(i * 3 + k * 5) % words.length]! + (k === 1 ? ' and more' : '')),
      label: i % n,
      line: i + 1,
    };
  });
}

/** Σ log p of the continuation written out on the full sequence, in float64. */
function expectedScore(model: BigramModel, tok: Tokenizer, context: string, continuation: string): number {
  const ids = [tok.bosId, ...tok.encode(context + continuation)];
  const start = 1 + tok.encode(context).length;
  let s = 0;
  for (let i = start; i < ids.length; i++) s += model.logProb(ids[i - 1]!, ids[i]!);
  return s;
}

test('zero-shot scores, acc and acc_norm match the protocol and do not depend on the batch size', async () => {
  const tok = charTokenizer(32);
  const model = new BigramModel(32, bigramTable(32, 3));
  const template = resolveTemplate('arc_easy');
  const recs = records();
  let accHits = 0;
  let normHits = 0;
  const expectedScores = recs.map((r) => {
    const requests = template.requests(r);
    const scores = requests.map((q) => expectedScore(model, tok, q.context, q.continuation));
    const p = predictions(scores, requests.map((q) => q.continuation));
    if (p.acc === r.label) accHits++;
    if (p.acc_norm === r.label) normHits++;
    return scores;
  });
  assert.ok(accHits !== normHits || accHits > 0, 'the fixture should exercise some correct answers');
  const before = tf.memory().numTensors;
  for (const batchSize of [1, 2, 4, 7, 100]) {
    const progress: number[] = [];
    const r = await zeroShot(model, tok, recs, template, { batchSize, onProgress: (d) => progress.push(d) });
    assert.equal(r.acc, accHits / recs.length, `acc at batch ${batchSize}`);
    assert.equal(r.acc_norm, normHits / recs.length, `acc_norm at batch ${batchSize}`);
    assert.equal(r.questions, recs.length);
    assert.equal(r.prefixMismatches, 0);
    r.scores.forEach((s, q) => s.forEach((v, k) => assert.ok(Math.abs(v - expectedScores[q]![k]!) < 1e-4, `q${q} choice ${k}`)));
    assert.equal(progress.at(-1), recs.length);
  }
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
});

test('every batch carries whole questions, right-padded to its longest sequence', async () => {
  const tok = charTokenizer(32);
  const model = new BigramModel(32, bigramTable(32, 3));
  const recs = records().slice(0, 4); // 2, 3, 4, 2 choices
  await zeroShot(model, tok, recs, resolveTemplate('generic'), { batchSize: 5 });
  assert.deepEqual(model.shapes.map((s) => s[0]), [5, 4, 2]);
  const longest = (r: MultipleChoiceRecord) => Math.max(...r.choices.map((c) => 1 + `Question: ${r.question}\nAnswer: ${c}`.length));
  assert.equal(model.shapes[0]![1], Math.max(longest(recs[0]!), longest(recs[1]!)));
  model.dispose();
});

test('one-token choices after one context are scored from a single context pass when the model has logits', async () => {
  const tok = charTokenizer(32);
  const table = bigramTable(32, 11);
  const template = resolveTemplate({ context: 'Q {question}:', continuation: '{choice}' });
  const recs: MultipleChoiceRecord[] = [
    { question: 'abc', choices: ['x', 'y', 'z'], label: 1, line: 1 },
    { question: 'de', choices: ['p', 'qq'], label: 0, line: 2 }, // two tokens: one row per choice
    { question: 'fghij', choices: ['k', 'l'], label: 1, line: 3 },
    { question: 'm', choices: ['n', 'o', 'r', 's'], label: 3, line: 4 },
  ];
  const plain = new BigramModel(32, table);
  const reusing = new BigramModel(32, table, true);
  const expected = recs.map((r) => template.requests(r).map((q) => expectedScore(plain, tok, q.context, q.continuation)));
  const a = await zeroShot(plain, tok, recs, template, { batchSize: 2 });
  for (const batchSize of [1, 2, 16]) {
    reusing.shapes = [];
    reusing.logitCalls = [];
    const b = await zeroShot(reusing, tok, recs, template, { batchSize });
    assert.equal(b.sharedContext, 3);
    assert.deepEqual([b.acc, b.acc_norm], [a.acc, a.acc_norm]);
    b.scores.forEach((s, q) => s.forEach((v, k) => assert.ok(Math.abs(v - expected[q]![k]!) < 1e-4, `q${q} c${k}: ${v} vs ${expected[q]![k]}`)));
    // Shared questions: one row each (the context without the choice); the two-token question: one row per choice.
    assert.equal(reusing.logitCalls.reduce((n, s) => n + s[0]!, 0), 3);
    assert.deepEqual(reusing.shapes.map((s) => s[0]), [2]);
  }
  assert.equal(a.sharedContext, 0);
  plain.dispose();
  reusing.dispose();
});

test('winogrande reports acc only; an empty task is an error', async () => {
  const tok = charTokenizer(32);
  const model = new BigramModel(32, bigramTable(32, 5));
  const r = await zeroShot(model, tok, [{ question: 'Tom hit _ hard.', choices: ['Bob', 'Al'], label: 1, line: 1 }], resolveTemplate('winogrande'), { batchSize: 2 });
  assert.equal(r.acc_norm, undefined);
  const expected = [
    expectedScore(model, tok, 'Tom hit Bob', ' hard.'),
    expectedScore(model, tok, 'Tom hit Al', ' hard.'),
  ];
  assert.equal(r.acc, argmax(expected) === 1 ? 1 : 0);
  await assert.rejects(zeroShot(model, tok, [], resolveTemplate('generic'), { batchSize: 2 }), (e: unknown) => e instanceof LopperError && e.code === 'LP5011');
  model.dispose();
});

// Pinned with the stories260K tokenizer (@huggingface/tokenizers, which reproduces HF tokenizers' ids on the
// fixtures): where the context ends, which ids are scored, and whether the context is a prefix.
const PINNED: { context: string; continuation: string; ids: number[]; start: number; prefixMatched: boolean }[] = [
  { context: 'Question: Which is hot?\nAnswer:', continuation: ' fire', ids: [1, 410, 473, 425, 411, 356, 417, 289, 467, 410, 448, 415, 417, 402, 410, 293, 270, 309, 450, 13, 447, 416, 419, 424, 285, 467, 272, 417, 276], start: 26, prefixMatched: true },
  { context: 'Question: Which is hot?\nAnswer:', continuation: '  two spaces', ids: [1, 410, 473, 425, 411, 356, 417, 289, 467, 410, 448, 415, 417, 402, 410, 293, 270, 309, 450, 13, 447, 416, 419, 424, 285, 467, 410, 259, 424, 414, 262, 427, 412, 331, 419], start: 26, prefixMatched: true },
  { context: 'Lily said', continuation: ', "Hi!"', ids: [1, 317, 336, 432, 313, 440, 417, 443, 436], start: 3, prefixMatched: true },
  { context: 'The cat sat on the', continuation: ' mat.', ids: [1, 291, 280, 294, 262, 294, 353, 265, 284, 294, 426], start: 8, prefixMatched: true },
  { context: 'Tom went to the café', continuation: ' — naïve', ids: [1, 274, 287, 263, 377, 267, 265, 280, 412, 431, 485, 410, 481, 297, 412, 198, 178, 360], start: 11, prefixMatched: true },
  { context: 'Answer:', continuation: ' 日本', ids: [1, 410, 447, 416, 419, 424, 285, 467, 410, 233, 154, 168, 233, 159, 175], start: 8, prefixMatched: true },
  { context: 'He said "', continuation: 'no"', ids: [1, 346, 336, 313, 416, 414, 436], start: 4, prefixMatched: true },
  { context: 'Once upon a', continuation: ' time', ids: [1, 403, 407, 261, 378], start: 4, prefixMatched: true },
  // A trailing space in the context: "▁" ends the context alone but merges into "▁f" in the whole, so the context is
  // not a prefix; the continuation is the whole's tail after the context's 9 ids ("i", "re").
  { context: 'Answer: ', continuation: 'fire', ids: [1, 410, 447, 416, 419, 424, 285, 467, 410, 417, 276], start: 9, prefixMatched: false },
];

test('stories260K tokenizer: context/continuation split on tricky strings', async (t) => {
  if (!existsSync(join(MODEL_DIR, 'tokenizer.json'))) return t.skip(`missing ${MODEL_DIR}/tokenizer.json (../shared/models/stories260K-hf)`);
  const tok = await loadTokenizer(MODEL_DIR);
  for (const p of PINNED) {
    const e = encodeRequest(tok, p);
    assert.deepEqual({ ids: e.ids, start: e.start, prefixMatched: e.prefixMatched }, { ids: p.ids, start: p.start, prefixMatched: p.prefixMatched }, JSON.stringify([p.context, p.continuation]));
    if (p.prefixMatched) {
      // Scored ids are exactly the tail of BOS + encode(context + continuation).
      assert.deepEqual(e.ids, [tok.bosId, ...tok.encode(p.context + p.continuation)]);
      assert.deepEqual(e.ids.slice(0, e.start), [tok.bosId, ...tok.encode(p.context)]);
    }
  }
});
