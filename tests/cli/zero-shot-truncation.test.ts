// A user's zero-shot run over a record longer than the model's context (PIQA line 315 with stories260K, 512 positions)
// runs to the end, as lm-evaluation-harness does, and says how many requests it left-truncated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MODEL, SHARED, missingShared } from '../prune/stories260k-helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli/main.js');
const PIQA = join(SHARED, 'data/zeroshot/piqa.jsonl');

/** An evaluate-only recipe on stories260K (cpu backend) with the given datasets: and report stage. */
const evaluateRecipe = (name: string, datasets: string, report: string) => `version: 1
name: ${name}
runtime: { backend: cpu }
models:
  base: { path: ${JSON.stringify(MODEL)} }
datasets:
  ${datasets}
stages:
  report: ${report}
`;

test('lopper run scores a PIQA record longer than the context and counts the truncated requests', (t) => {
  const missing = missingShared();
  if (missing) return t.skip(`missing ${missing}`);
  if (!existsSync(cli)) return t.skip('missing dist/cli/main.js (run npx tsc -p .)');
  if (!existsSync(PIQA)) return t.skip(`missing ${PIQA}`);
  const dir = mkdtempSync(join(tmpdir(), 'lopper-truncation-'));
  const lines = readFileSync(PIQA, 'utf8').split('\n');
  writeFileSync(join(dir, 'piqa.jsonl'), [lines[0], lines[314], lines[1]].join('\n') + '\n');
  writeFileSync(join(dir, 'r.yaml'), evaluateRecipe('truncation', 'piqa: { path: piqa.jsonl, format: multiple-choice, template: piqa }',
    '{ kind: evaluate, models: [base], zero_shot: { tasks: [{ dataset: piqa }] }, speed: { iterations: 1 } }'));
  const r = spawnSync(process.execPath, [cli, 'run', 'r.yaml', '--json'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr + r.stdout, /2 requests left-truncated to the 512-position context/);
  const out = (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { stages: Record<string, { output: string }> }).stages.report!.output;
  const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
  assert.equal(metrics.models.base.details.zero_shot.piqa.questions, 3);
  assert.equal(metrics.models.base.details.zero_shot.piqa.truncated_requests, 2);
  assert.equal(typeof metrics.models.base.zero_shot.piqa.acc_norm, 'number');
});

test('an empty or too short perplexity dataset fails naming its file, before any window is scored', (t) => {
  const missing = missingShared();
  if (missing) return t.skip(`missing ${missing}`);
  if (!existsSync(cli)) return t.skip('missing dist/cli/main.js (run npx tsc -p .)');
  const dir = mkdtempSync(join(tmpdir(), 'lopper-empty-'));
  for (const [file, content, message] of [['empty.txt', '\n\n', /empty\.txt error\[LP5008\]: dataset "text" is empty/], ['short.txt', 'one two', /short\.txt error\[LP5008\]: dataset "text" has \d+ token ids/]] as const) {
    writeFileSync(join(dir, file), content);
    writeFileSync(join(dir, 'r.yaml'), evaluateRecipe('empty', `text: { path: ${file}, format: text }`,
      '{ kind: evaluate, models: [base], perplexity: { datasets: [text], seq_len: 64 }, speed: { iterations: 1 } }'));
    const r = spawnSync(process.execPath, [cli, 'run', 'r.yaml'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, message);
  }
});
