// Bad inputs through the built CLI, as a user meets them: each run fails with a clear `error[LPxxxx]` naming the
// offending file, a nonzero exit and no stack trace; the store stays consistent (no temp dir left under
// <store>/tmp, finished stages stored) and a rerun after fixing the input completes. The broken files are made in a
// temp dir from the real ../shared/models/stories260K-hf. Needs `npx tsc -p .` first (dist/cli/main.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const main = resolve('dist/cli/main.js');
const hfModel = resolve('../shared/models/stories260K-hf');
const textSource = resolve('../shared/data/tinystories/tinystories_val_first.txt');
const arcSource = resolve('../shared/data/zeroshot/ARC-Easy.jsonl');
const skip = !existsSync(main) ? `${main} missing: run npx tsc -p . first`
  : !existsSync(hfModel) || !existsSync(textSource) || !existsSync(arcSource) ? '../shared (stories260K-hf, tinystories, ARC-Easy) is absent' : false;

interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function lopper(cwd: string, ...args: string[]): Result {
  const r = spawnSync(process.execPath, [main, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** A workspace with a writable copy of the HF model, a small text dataset, and a group → … → evaluate recipe. */
function workspace(opts: { samples?: number; taylor?: string } = {}): { dir: string; recipe: string; store: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lopper-bad-'));
  cpSync(hfModel, join(dir, 'hf'), { recursive: true });
  chmodSync(join(dir, 'hf'), 0o755);
  for (const f of readdirSync(join(dir, 'hf'))) chmodSync(join(dir, 'hf', f), 0o644);
  writeFileSync(join(dir, 'stories.txt'), readFileSync(textSource).subarray(0, opts.samples ? 200_000 : 20_000));
  writeFileSync(join(dir, 'recipe.yaml'), `version: 1
name: bad-inputs
runtime: { backend: wasm }
models:
  base: { path: hf }
datasets:
  stories: { path: stories.txt, format: text }
stages:
  groups: { kind: group, model: base, mode: block, attention: { layers: [1, 4] }, mlp: { layers: [1, 4] } }
  scores: { kind: score, groups: groups, importance: taylor, taylor: ${opts.taylor ?? 'param_first'}, calibration: { dataset: stories, samples: ${opts.samples ?? 4}, seq_len: 64 } }
  importance: { kind: aggregate, scores: scores }
  pruned: { kind: prune, importance: importance, ratio: 0.25 }
  report: { kind: evaluate, models: [base, pruned], perplexity: { datasets: [stories], seq_len: 64, limit: 4 } }
`);
  return { dir, recipe: 'recipe.yaml', store: join(dir, '.lopper') };
}

/** A user error: nonzero exit, `error[code]` naming `file`, no stack trace, no "internal error". */
function assertUserError(r: Result, code: string, file: string | RegExp): void {
  assert.notEqual(r.code, 0, `exit code\n${r.stderr}`);
  assert.equal(r.signal, null, 'the CLI exits on its own');
  assert.match(r.stderr, new RegExp(`error\\[${code}\\]`), r.stderr);
  const errorLines = r.stderr.split('\n').filter((l) => l.includes(`error[${code}]`)).join('\n');
  if (typeof file === 'string') assert.ok(errorLines.includes(file), `error names ${file}:\n${r.stderr}`);
  else assert.match(errorLines, file, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+\)?\n/, 'no stack trace');
  assert.doesNotMatch(r.stderr, /internal error/);
}

/** No temp dir left in <store>/tmp (absent store: nothing was written). */
function assertStoreClean(store: string): void {
  const tmp = join(store, 'tmp');
  if (existsSync(tmp)) assert.deepEqual(readdirSync(tmp), [], `${tmp} is empty`);
}

function stageTable(r: Result): Record<string, { status: string; output: string }> {
  const last = r.stdout.trim().split('\n').at(-1)!;
  return (JSON.parse(last) as { stages: Record<string, { status: string; output: string }> }).stages;
}

/** The rerun after the fix completes; every stage ran or came from the store. */
function assertRerunWorks(w: { dir: string; recipe: string; store: string }): Record<string, { status: string }> {
  const r = lopper(w.dir, 'run', w.recipe, '--json');
  assert.equal(r.code, 0, r.stderr);
  const stages = stageTable(r);
  for (const [id, s] of Object.entries(stages)) assert.ok(['ran', 'cached'].includes(s.status), `${id}: ${s.status}`);
  assert.ok(existsSync(join(stages.report!.output, 'metrics.json')));
  assertStoreClean(w.store);
  return stages;
}

test('(a) a truncated model.safetensors: LP3004 naming the file; rerun after restoring it works', { skip }, () => {
  const w = workspace();
  const weights = join(w.dir, 'hf', 'model.safetensors');
  writeFileSync(weights, readFileSync(weights).subarray(0, 500_000));
  const r = lopper(w.dir, 'run', w.recipe, '--json');
  assertUserError(r, 'LP3004', weights);
  assert.match(r.stderr, /truncated/);
  assert.equal(stageTable(r).scores!.status, 'failed');
  assertStoreClean(w.store);
  copyFileSync(join(hfModel, 'model.safetensors'), weights);
  // The group stage reads config.json only, so it ran and was stored; its key hashes the weights too, so the
  // restored file gives it a new key.
  assert.equal(stageTable(r).groups!.status, 'ran');
  assert.ok(existsSync(join(stageTable(r).groups!.output, 'groups.json')));
  assertRerunWorks(w);
});

test('(b) a safetensors header length that is absurd: LP3005 naming the file, no huge allocation', { skip }, () => {
  const w = workspace();
  const weights = join(w.dir, 'hf', 'model.safetensors');
  const bytes = readFileSync(weights);
  for (const length of [2n ** 62n, 2n ** 64n - 1n]) {
    bytes.writeBigUInt64LE(length, 0);
    writeFileSync(weights, bytes);
    const r = lopper(w.dir, 'run', w.recipe);
    assertUserError(r, 'LP3005', weights);
    assert.match(r.stderr, /header length \d+ bytes is implausible/);
    assertStoreClean(w.store);
  }
  copyFileSync(join(hfModel, 'model.safetensors'), weights);
  assertRerunWorks(w);
});

test('(c) a config.json whose shapes do not fit the weights: LP3008 naming the tensor, the weights and config.json', { skip }, () => {
  const w = workspace();
  const config = join(w.dir, 'hf', 'config.json');
  const original = readFileSync(config, 'utf8');
  writeFileSync(config, JSON.stringify({ ...JSON.parse(original), intermediate_size: 200 }));
  const r = lopper(w.dir, 'run', w.recipe);
  assertUserError(r, 'LP3008', join(w.dir, 'hf', 'model.safetensors'));
  assert.match(r.stderr, /has shape \[64,172\] but config\.json implies \[64,200\]/);
  assertStoreClean(w.store);
  // A head count the KV heads do not divide fails in the group stage already, naming config.json.
  writeFileSync(config, JSON.stringify({ ...JSON.parse(original), num_attention_heads: 7 }));
  assertUserError(lopper(w.dir, 'run', w.recipe), 'LP3003', config);
  assertStoreClean(w.store);
  writeFileSync(config, original);
  assertRerunWorks(w);
});

test('(d) a dataset file that does not exist: LP2008 at the recipe line:col, nothing runs', { skip }, () => {
  const w = workspace();
  const recipe = join(w.dir, w.recipe);
  const text = readFileSync(recipe, 'utf8');
  writeFileSync(recipe, text.replace('path: stories.txt', 'path: missing/stories.txt'));
  const lines = readFileSync(recipe, 'utf8').split('\n');
  const line = lines.findIndex((l) => l.includes('missing/stories.txt')) + 1;
  const col = lines[line - 1]!.indexOf('missing/stories.txt') + 1;
  for (const command of ['plan', 'run']) {
    const r = lopper(w.dir, command, w.recipe, ...(command === 'run' ? ['--json'] : []));
    assertUserError(r, 'LP2008', `${w.recipe}:${line}:${col} error[LP2008]`);
    assert.match(r.stderr, /dataset "stories": .*missing\/stories\.txt does not exist/);
    assert.equal(r.stdout, '', `${command} prints no stage table`);
  }
  assertStoreClean(w.store);
  assert.ok(!existsSync(join(w.store, 'out')) || readdirSync(join(w.store, 'out')).length === 0, 'no stage ran');
  writeFileSync(recipe, text);
  assertRerunWorks(w);
});

test('(e) a multiple-choice jsonl with a malformed line: the error names file:line', { skip }, () => {
  const w = workspace();
  const arc = readFileSync(arcSource, 'utf8').split('\n').filter((l) => l.trim()).slice(0, 4);
  const data = join(w.dir, 'arc.jsonl');
  const recipe = join(w.dir, 'zero-shot.yaml');
  writeFileSync(recipe, `version: 1
name: bad-jsonl
runtime: { backend: wasm }
models:
  base: { path: hf }
datasets:
  arc: { path: arc.jsonl, format: multiple-choice, template: arc_easy }
stages:
  report: { kind: evaluate, models: [base], zero_shot: { tasks: [{ dataset: arc }] } }
`);
  const cases: [string, string, RegExp][] = [
    [[...arc.slice(0, 2), '{"question": "cut short", "choices": [', ...arc.slice(2)].join('\n'), 'LP5001', /line 3 of .*arc\.jsonl is not valid JSON/],
    [[...arc.slice(0, 3), '{"question": "q", "choices": ["a", "b"], "label": 5}'].join('\n'), 'LP5002', /"label" must be an integer index/],
    ['\n\n', 'LP5011', /zero-shot task "arc" has no records/],
  ];
  for (const [content, code, message] of cases) {
    writeFileSync(data, content);
    const r = lopper(w.dir, 'run', 'zero-shot.yaml');
    const lineNo = content.split('\n').findIndex((l) => l.startsWith('{"question": "')) + 1;
    assertUserError(r, code, code === 'LP5011' ? data : `${data}:${lineNo}`);
    assert.match(r.stderr, message);
    assertStoreClean(w.store);
  }
  writeFileSync(data, `${arc.join('\n')}\n`);
  const r = lopper(w.dir, 'run', 'zero-shot.yaml', '--json');
  assert.equal(r.code, 0, r.stderr);
  const metrics = JSON.parse(readFileSync(join(stageTable(r).report!.output, 'metrics.json'), 'utf8'));
  assert.equal(typeof metrics.models.base.zero_shot.arc.acc, 'number');
  assertStoreClean(w.store);
});

test('(f) SIGINT while the score stage runs: exit 130 soon after, no temp dir left, the rerun reuses finished stages', { skip }, async () => {
  // param_second: one backward pass per calibration sample, so the stage is in a loop with progress when hit.
  const w = workspace({ samples: 120, taylor: 'param_second' });
  const child = spawn(process.execPath, [main, 'run', w.recipe, '--json'], { cwd: w.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let sentAt: number | undefined;
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => {
    stderr += d;
    if (sentAt === undefined && /scores\s+backward passes [1-9]\d*\/121/.test(stderr)) {
      sentAt = performance.now();
      child.kill('SIGINT');
    }
  });
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res) => child.on('exit', (c, s) => res([c, s])));
  clearTimeout(watchdog);
  assert.ok(sentAt !== undefined, `the score stage reported progress:\n${stderr}`);
  assert.equal(signal, null, stderr);
  assert.equal(code, 130, stderr);
  // Stages check the signal between backward passes: the process stops within a pass or two, not at the stage's end.
  assert.ok(performance.now() - sentAt! < 5_000, `exited ${Math.round(performance.now() - sentAt!)} ms after SIGINT`);
  assert.doesNotMatch(stderr, /\n\s+at .+:\d+:\d+\)?\n/, 'no stack trace');
  assert.match(stderr, /interrupted/);
  assert.doesNotMatch(stderr, /scores\s+backward passes 121\/121/, 'the stage did not run to its end');
  const table = (JSON.parse(stdout.trim().split('\n').at(-1)!) as { stages: Record<string, { status: string; output: string }> }).stages;
  assert.equal(table.groups!.status, 'ran');
  assert.equal(table.scores!.status, 'cancelled');
  assert.ok(!existsSync(table.scores!.output), 'a cancelled stage leaves no output');
  assertStoreClean(w.store);
  const again = assertRerunWorks(w);
  assert.equal(again.groups!.status, 'cached');
  assert.equal(again.scores!.status, 'ran');
});
