import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinTemplates, hellaswagPreprocess, renderTemplateText, resolveTemplate } from '../../src/eval/templates.js';
import { LopperError } from '../../src/errors/lopper-error.js';
import type { MultipleChoiceRecord } from '../../src/data/jsonl.js';

const record = (question: string, choices: string[], label = 0): MultipleChoiceRecord => ({ question, choices, label, line: 7 });

test('arc, piqa, boolq, social_iqa and generic: "Question: …\\nAnswer:" + " choice"', () => {
  for (const name of ['arc_easy', 'arc_challenge', 'piqa', 'boolq', 'social_iqa', 'generic']) {
    const requests = resolveTemplate(name).requests(record('Which is hot?', ['fire', 'ice']));
    assert.deepEqual(requests, [
      { context: 'Question: Which is hot?\nAnswer:', continuation: ' fire' },
      { context: 'Question: Which is hot?\nAnswer:', continuation: ' ice' },
    ], name);
  }
});

test('openbookqa: the question itself is the context', () => {
  assert.deepEqual(resolveTemplate('openbookqa').requests(record('Predators eat', ['lions', 'bunnies'])), [
    { context: 'Predators eat', continuation: ' lions' },
    { context: 'Predators eat', continuation: ' bunnies' },
  ]);
});

test('winogrande partial scoring: the option fills the blank in the context, the rest is the shared continuation', () => {
  const t = resolveTemplate('winogrande');
  assert.deepEqual(t.metrics, ['acc']);
  // The record shape of ../shared/data/zeroshot/winogrande.jsonl: the sentence with "_" in "question".
  assert.deepEqual(t.requests(record('Sarah was a much better surgeon than Maria so _ always got the easier cases.', ['Sarah', 'Maria'])), [
    { context: 'Sarah was a much better surgeon than Maria so Sarah', continuation: ' always got the easier cases.' },
    { context: 'Sarah was a much better surgeon than Maria so Maria', continuation: ' always got the easier cases.' },
  ]);
  // Whitespace around the rest is stripped and one space put back; a blank right before punctuation keeps it attached.
  assert.deepEqual(t.requests(record('They chose the _ .  ', ['bed', 'sofa']))[1], { context: 'They chose the sofa', continuation: ' .' });
  assert.deepEqual(t.requests(record("the _'s leg", ['dog', 'cat']))[0], { context: 'the dog', continuation: " 's leg" });
  assert.throws(() => t.requests(record('no blank here', ['a', 'b'])), (e: unknown) => e instanceof LopperError && e.code === 'LP5005' && /line 7/.test(e.message));
});

test('reported metrics follow LLM-Pruner: acc for BoolQ and WinoGrande, acc_norm for ARC, PIQA, OBQA, HellaSwag', () => {
  const reported = Object.fromEntries([...builtinTemplates].map(([n, t]) => [n, t.reported]));
  assert.deepEqual(reported, {
    generic: 'acc', arc_easy: 'acc_norm', arc_challenge: 'acc_norm', piqa: 'acc_norm', boolq: 'acc', social_iqa: 'acc',
    openbookqa: 'acc_norm', hellaswag: 'acc_norm', winogrande: 'acc',
  });
});

test('boolq with a passage: the harness prompt "{passage}\\nQuestion: {question}?\\nAnswer:" scored on " no" / " yes"', () => {
  const r = { ...record('is the sky green', ['false', 'true'], 0), passage: 'The sky is blue.' };
  assert.deepEqual(resolveTemplate('boolq').requests(r), [
    { context: 'The sky is blue.\nQuestion: is the sky green?\nAnswer:', continuation: ' no' },
    { context: 'The sky is blue.\nQuestion: is the sky green?\nAnswer:', continuation: ' yes' },
  ]);
});

test('hellaswag: the harness preprocessing of ctx and endings (WikiHow brackets, Python capitalize)', () => {
  assert.equal(hellaswagPreprocess('  Wash hands [title] Use soap.  [step] Rinse  well. '), 'Wash hands. Use soap.  Rinse well.', 'three spaces keep two, as in Python');
  assert.equal(hellaswagPreprocess('a   b'), 'a  b', 'one pass of "  " → " ", like str.replace');
  const r: MultipleChoiceRecord = {
    question: '', choices: ['rinses [substeps] them.', 'Dries them.'], label: 0, line: 3,
    hellaswag: { activityLabel: 'Washing hands', ctxA: 'A man turns on the tap.', ctxB: 'he WETS his hands' },
  };
  assert.deepEqual(resolveTemplate('hellaswag').requests(r), [
    { context: 'Washing hands: A man turns on the tap. He wets his hands', continuation: ' rinses them.' },
    { context: 'Washing hands: A man turns on the tap. He wets his hands', continuation: ' Dries them.' },
  ]);
});

test('user templates render {question} and {choice}, with {{ }} as literal braces', () => {
  const t = resolveTemplate({ context: 'Q: {question} {{x}}\nA:', continuation: ' {choice}!' });
  assert.deepEqual(t.requests(record('why {not}?', ['yes', 'no'])), [
    { context: 'Q: why {not}? {x}\nA:', continuation: ' yes!' },
    { context: 'Q: why {not}? {x}\nA:', continuation: ' no!' },
  ]);
  assert.equal(renderTemplateText('{choice}{question}', { question: 'q', choice: 'c' }), 'cq');
});

test('unknown templates and placeholders fail before any scoring', () => {
  assert.throws(() => resolveTemplate('hellaswag_v2'), (e: unknown) => e instanceof LopperError && e.code === 'LP5003' && /arc_easy/.test(e.hint ?? ''));
  assert.throws(
    () => resolveTemplate({ context: '{question} {passage}', continuation: ' {choice}' }),
    (e: unknown) => e instanceof LopperError && e.code === 'LP5004' && /\{passage\}/.test(e.message),
  );
  assert.equal(resolveTemplate(undefined).name, 'generic');
});
