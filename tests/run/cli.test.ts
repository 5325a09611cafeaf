// The runner's commands end to end on the shipped example (copied to a temp dir with absolute paths): --json, a
// cached rerun, explain, show, cache ls, and Ctrl-C during the score stage.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';

const root = resolve(import.meta.dirname, '..', '..');
const main = join(root, 'dist', 'cli', 'main.js');
const example = join(root, 'examples', 'stories260k-taylor.yaml');
const shared = resolve(root, '..', 'shared');

async function copyExample(): Promise<{ dir: string; recipe: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'lopper-cli-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const text = (await readFile(example, 'utf8')).replace(/path: (\.\.\/[^\s,}]+)/g, (_m, p: string) => `path: ${resolve(dirname(example), p)}`);
  const recipe = join(dir, 'recipe.yaml');
  await writeFile(recipe, text);
  return { dir, recipe };
}

const lopper = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env: { ...process.env, CI: '1' } });

test('lopper run --json / rerun / explain / show / cache ls, and Ctrl-C during a stage', { timeout: 240_000 }, async (t) => {
  if (!existsSync(main)) return t.skip('dist/cli/main.js missing: run npx tsc -p . first');
  if (!existsSync(example)) return t.skip('examples/stories260k-taylor.yaml missing');
  if (!existsSync(join(shared, 'models', 'stories260K-hf'))) return t.skip('missing ../shared/models/stories260K-hf');
  const { dir, recipe } = await copyExample();

  // Ctrl-C while scores runs: exit 130, nothing half-written, groups kept.
  const child = spawn(process.execPath, [main, 'run', recipe, '--only', 'importance'], { env: { ...process.env, CI: '1' } });
  let out = '';
  child.stdout.on('data', (d) => { out += d; if (/▶ scores/.test(out) && !child.killed) child.kill('SIGINT'); });
  child.stderr.on('data', (d) => { out += d; });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 130, out);
  assert.match(out, /■ scores\s+cancelled/);
  assert.deepEqual(await readdir(join(dir, '.lopper', 'tmp')), []);

  const first = lopper('run', recipe, '--only', 'importance', '--json');
  assert.equal(first.status, 0, first.stderr);
  const table = JSON.parse(first.stdout.trim().split('\n').pop()!);
  assert.deepEqual(Object.fromEntries(Object.entries(table.stages).map(([k, v]) => [k, (v as { status: string }).status])), { groups: 'cached', scores: 'ran', importance: 'ran' });
  assert.ok(existsSync(join(table.stages.importance.output, 'importance.json')));

  const again = lopper('run', recipe, '--only', 'importance', '--json');
  const table2 = JSON.parse(again.stdout.trim().split('\n').pop()!);
  assert.ok(Object.values(table2.stages).every((s) => (s as { status: string }).status === 'cached'));
  assert.deepEqual(table2.stages.importance.output, table.stages.importance.output);

  const dry = lopper('run', recipe, '--dry-run', '--set', 'vars.ratio=0.5');
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, /importance\s+cached/);
  assert.match(dry.stdout, /pruned\s+will run\s+\w+\s+never ran/);

  const ex = lopper('explain', recipe, 'scores', '--backend', 'cpu');
  assert.equal(ex.status, 0, ex.stderr);
  assert.match(ex.stdout, /scores \(score\): will run/);
  assert.match(ex.stdout, /backend auto -> cpu/);

  const show = lopper('show', recipe);
  assert.equal(show.status, 0, show.stderr);
  assert.equal(show.stdout.trim().split('\n').length, 1 + 3, show.stdout);
  assert.match(show.stdout, /cancelled/);
  const ls = lopper('cache', 'ls', recipe);
  assert.match(ls.stdout, /3 outputs/);
  assert.ok(existsSync(join(dir, 'recipe.lock')));
});
