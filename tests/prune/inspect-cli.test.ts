// `lopper inspect` from a config.json alone (built CLI: run `npx tsc -p .` first).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = `${root}dist/cli/main.js`;
const lopper = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8' });

test('inspect LLaMA-7B at ratio 0.25 on layers [4, 30]: 24 heads, 8256 channels, 6,738,415,616 -> 5,422,977,024', (t) => {
  if (!existsSync(cli)) return t.skip('missing dist/cli/main.js (run npx tsc -p .)');
  const r = lopper('inspect', 'tests/fixtures/configs/llama-7b', '--ratio', '0.25', '--attention-layers', '4,30', '--mlp-layers', '4,30', '--json');
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.before.params, 6_738_415_616);
  assert.equal(report.after.params, 5_422_977_024);
  for (const l of report.after.layers) {
    const pruned = l.layer >= 4 && l.layer < 30;
    assert.deepEqual([l.heads, l.kvHeads, l.intermediate], pruned ? [24, 24, 8256] : [32, 32, 11008]);
  }
  const text = lopper('inspect', 'tests/fixtures/configs/llama-7b/config.json', '--ratio', '0.25', '--attention-layers', '4,30', '--mlp-layers', '4,30');
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /6,738,415,616 → 5,422,977,024 \(80\.48%\)/);
});

test('inspect --target-params solves the ratio; bad input is a user error', (t) => {
  if (!existsSync(cli)) return t.skip('missing dist/cli/main.js (run npx tsc -p .)');
  const r = lopper('inspect', 'tests/fixtures/configs/llama-7b', '--target-params', '5422977024', '--attention-layers', '4,30', '--mlp-layers', '4,30', '--json');
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.after.params, 5_422_977_024);
  assert.ok(report.ratio > 0.24 && report.ratio <= 0.25);
  const plain = lopper('inspect', 'tests/fixtures/configs/llama-7b', '--json');
  assert.equal(JSON.parse(plain.stdout).after, undefined);
  const bad = lopper('inspect', 'tests/fixtures/configs/llama-7b', '--ratio', '0.25', '--attention-layers', '4,40');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /LP4001/);
});
