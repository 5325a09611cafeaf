// The built CLI (node dist/cli/main.js; `npm test` builds first): validate, plan, graph, --help, exit codes and the
// `file:line:col error[CODE]: message` format with a code frame and no stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const main = 'dist/cli/main.js';
const built = existsSync(main);

function lopper(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const yamlIn = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(dir, f));

test('validate passes on every recipe in examples/ and pipelines/', { skip: !built && `${main} missing: run npx tsc -p . first` }, () => {
  const files = [...yamlIn('examples'), ...yamlIn('pipelines')];
  const r = lopper('validate', ...files);
  assert.equal(r.code, 0, r.stderr);
  for (const f of files) assert.match(r.stdout, new RegExp(`^${f.replace(/[.]/g, '\\.')}: ok \\(`, 'm'));
  assert.doesNotMatch(r.stderr, /error\[/);
});

test('validate reports each invalid recipe as file:line:col error[CODE] with a code frame, exit code 1, no stack trace', { skip: !built && `${main} missing: run npx tsc -p . first` }, () => {
  const files = yamlIn('tests/fixtures/invalid');
  const r = lopper('validate', ...files);
  assert.equal(r.code, 1);
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+\)?\n/, 'no stack trace');
  const errorLines = r.stderr.split('\n').filter((l) => / error\[LP\d{4}\]: /.test(l));
  assert.equal(errorLines.length, files.length, 'one error per recipe');
  for (const f of files) {
    const [, code, line, col] = /^# expect: error\[(LP\d{4})\] at (\d+):(\d+)/.exec(readFileSync(f, 'utf8'))!;
    const expected = `${f}:${line}:${col} error[${code}]: `;
    const i = r.stderr.split('\n').findIndex((l) => l.startsWith(expected));
    assert.ok(i >= 0, `missing "${expected}"`);
    // The code frame shows the offending line with its number and a caret under the column.
    const frame = r.stderr.split('\n').slice(i + 1, i + 5);
    const source = readFileSync(f, 'utf8').split('\n')[Number(line) - 1]!.replace(/\t/g, ' ');
    assert.ok(frame.some((l) => l === `${line} | ${source}`), `frame of ${f}:\n${frame.join('\n')}`);
    const caret = frame.find((l) => /^\s+\| +\^+$/.test(l));
    assert.ok(caret, `caret line of ${f}`);
    assert.equal(caret.indexOf('^') - caret.indexOf('|') - 2, Number(col) - 1, `caret column of ${f}`);
  }
});

test('a missing recipe file is a user error (exit 1, LP1014)', { skip: !built && `${main} missing` }, () => {
  const r = lopper('plan', 'no/such/recipe.yaml');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^no\/such\/recipe\.yaml error\[LP1014\]: recipe no\/such\/recipe\.yaml does not exist$/m);
});

function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lopper-cli-'));
  mkdirSync(join(dir, 'model'));
  writeFileSync(join(dir, 'model', 'config.json'), JSON.stringify({ num_hidden_layers: 4 }));
  writeFileSync(join(dir, 'model', 'model.safetensors'), 'weights');
  writeFileSync(join(dir, 'text.txt'), 'text\n');
  writeFileSync(join(dir, 'recipe.yaml'), `version: 1
name: cli
vars: { ratio: 0.25 }
models:
  base: { path: model }
datasets:
  text: { path: text.txt, format: text }
stages:
  groups: { kind: group, model: base, mlp: { layers: [0, 4] } }
  scores: { kind: score, groups: groups, calibration: { dataset: text } }
  importance: { kind: aggregate, scores: scores }
  pruned: { kind: prune, importance: importance, ratio: "\${vars.ratio}" }
  report: { kind: evaluate, models: [base, pruned], perplexity: { datasets: [text] } }
`);
  return join(dir, 'recipe.yaml');
}

test('plan --json is byte-identical across runs and --set changes only downstream keys', { skip: !built && `${main} missing` }, () => {
  const recipe = workspace();
  const a = lopper('plan', recipe, '--json');
  const b = lopper('plan', recipe, '--json');
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  const keys = (out: string) => Object.fromEntries((JSON.parse(out) as { stages: { id: string; key: string }[] }).stages.map((s) => [s.id, s.key]));
  const before = keys(a.stdout);
  assert.deepEqual(Object.keys(before), ['groups', 'scores', 'importance', 'pruned', 'report']);
  const after = keys(lopper('plan', recipe, '--json', '--set', 'vars.ratio=0.5').stdout);
  assert.deepEqual(Object.keys(before).filter((id) => before[id] !== after[id]), ['pruned', 'report']);
  const text = lopper('plan', recipe);
  assert.match(text.stdout, /^ {2}pruned +prune +will run +[0-9a-f]{12} +importance, base$/m);
});

test('graph prints mermaid and dot', { skip: !built && `${main} missing` }, () => {
  const recipe = workspace();
  const m = lopper('graph', recipe, '--format', 'mermaid');
  assert.equal(m.code, 0, m.stderr);
  assert.match(m.stdout, /^flowchart TD$/m);
  assert.match(m.stdout, /^ {2}s2 --> s3$/m); // importance → pruned
  const d = lopper('graph', recipe, '--format', 'dot');
  assert.match(d.stdout, /^digraph "cli" \{$/m);
  assert.match(d.stdout, /^ {2}"importance" -> "pruned";$/m);
  assert.match(d.stdout, /^ {2}"model:base" -> "groups";$/m);
  assert.notEqual(lopper('graph', recipe, '--format', 'svg').code, 0);
});

test('--help works everywhere and every command that reads a recipe takes --set and --backend', { skip: !built && `${main} missing` }, () => {
  const top = lopper('--help');
  assert.equal(top.code, 0);
  const commands = [...top.stdout.matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]!).filter((c) => c !== 'help');
  for (const c of ['validate', 'plan', 'graph']) assert.ok(commands.includes(c), `${c} in --help`);
  for (const c of commands) {
    const r = lopper(c, '--help');
    assert.equal(r.code, 0, `${c} --help`);
    if (!/^Usage: lopper \S+ \[options\] <file>/m.test(r.stdout)) continue; // e.g. `inspect <config>`, `cache`
    assert.match(r.stdout, /--set <key=value>/, `${c} --set`);
    assert.match(r.stdout, /--backend <name>/, `${c} --backend`);
  }
});

test('watch on a recipe that does not exist fails at once (LP1014, exit 1) instead of waiting', { skip: !built && `${main} missing: run npx tsc -p . first` }, () => {
  const r = spawnSync(process.execPath, [main, 'watch', 'no-such-recipe.yaml'], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /no-such-recipe\.yaml error\[LP1014\]: recipe no-such-recipe\.yaml does not exist/);
});
