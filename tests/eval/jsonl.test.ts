import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseJsonl, readMultipleChoice } from '../../src/data/jsonl.js';
import { LopperError } from '../../src/errors/lopper-error.js';

async function file(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lopper-jsonl-'));
  const path = join(dir, 'mc.jsonl');
  await writeFile(path, text);
  return path;
}

test('reads records, skips blank lines, keeps line numbers, honours the limit', async () => {
  const path = await file(
    '{"id": "a", "question": "Q1", "choices": ["x", "y"], "label": 1}\n\n' +
      '{"question": "Q2", "choices": ["x", "y", "z"], "label": 0}\r\n' +
      '{"question": "Q3", "choices": ["x", "y"], "label": 0}\n',
  );
  const all = await readMultipleChoice(path);
  assert.deepEqual(all.map((r) => [r.question, r.label, r.line, r.choices.length, r.id]), [
    ['Q1', 1, 1, 2, 'a'],
    ['Q2', 0, 3, 3, undefined],
    ['Q3', 0, 4, 2, undefined],
  ]);
  assert.equal((await readMultipleChoice(path, 2)).length, 2);
});

test('a limit stops before a broken line further down', async () => {
  const path = await file('{"question": "Q", "choices": ["a", "b"], "label": 0}\n{broken\n');
  assert.equal((await readMultipleChoice(path, 1)).length, 1);
  await assert.rejects(readMultipleChoice(path), (e: unknown) => e instanceof LopperError && e.code === 'LP5001' && e.location?.line === 2);
});

test('invalid JSON names the line and column', () => {
  assert.throws(
    () => parseJsonl('{"a": 1}\n{"a": 1,, }\n', 'f.jsonl'),
    (e: unknown) => e instanceof LopperError && e.code === 'LP5001' && e.location?.line === 2 && e.location.column === 9 && /line 2 of f\.jsonl/.test(e.message),
  );
});

test('records of the wrong shape are rejected with their line', async () => {
  const cases: [string, RegExp][] = [
    ['[1, 2]', /not a JSON object/],
    ['{"choices": ["a", "b"], "label": 0}', /"question"/],
    ['{"question": "q", "choices": ["a"], "label": 0}', /at least 2/],
    ['{"question": "q", "choices": ["a", 3], "label": 0}', /"choices"\[1\]/],
    ['{"question": "q", "choices": ["a", "b"], "label": 2}', /"label".*0\.\.1/],
    ['{"question": "q", "choices": ["a", "b"], "label": "1"}', /"label"/],
    ['{"question": "q", "choices": ["a", "b"], "label": 0.5}', /"label"/],
    ['{"question": "q", "choices": ["a", "b"], "label": 0, "passage": 3}', /"passage"/],
    ['{"activity_label": "x", "ctx_a": "a", "endings": ["e", "f"], "label": 0}', /"ctx_b"/],
    ['{"activity_label": "x", "ctx_a": "a", "ctx_b": "b", "endings": ["e", "f"], "label": "2"}', /"label".*"endings"/],
  ];
  for (const [line, message] of cases) {
    const path = await file(`{"question": "ok", "choices": ["a", "b"], "label": 0}\n${line}\n`);
    await assert.rejects(readMultipleChoice(path), (e: unknown) => e instanceof LopperError && e.code === 'LP5002' && e.location?.line === 2 && message.test(e.message));
  }
});

test('HellaSwag records in the dataset\'s own shape and BoolQ records with a passage are read', async () => {
  const path = await file([
    '{"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "endings": ["is using wrap.", "is ripping shingles."], "label": "1"}',
    '{"question": "is it", "choices": ["false", "true"], "label": 1, "passage": "It is."}',
  ].join('\n') + '\n');
  const [h, b] = await readMultipleChoice(path);
  assert.deepEqual(h, {
    question: 'Roof shingle removal: A man is sitting on a roof. he', choices: ['is using wrap.', 'is ripping shingles.'], label: 1, line: 1,
    hellaswag: { activityLabel: 'Roof shingle removal', ctxA: 'A man is sitting on a roof.', ctxB: 'he' }, id: '24',
  });
  assert.equal(b!.passage, 'It is.');
});

test('a missing file is a LopperError naming the path', async () => {
  await assert.rejects(readMultipleChoice('/nonexistent/mc.jsonl'), (e: unknown) => e instanceof LopperError && e.code === 'LP5012' && /nonexistent/.test(e.message));
});
