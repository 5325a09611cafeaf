// Every recipe in tests/fixtures/invalid/ has exactly one problem, named on its first line as
// `# expect: error[CODE] at LINE:COL`; validate() must report exactly that error and no other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validate } from '../../src/index.js';

const dir = 'tests/fixtures/invalid';
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

test('the corpus has at least 30 recipes', () => {
  assert.ok(files.length >= 30, `only ${files.length} recipes`);
});

for (const name of files) {
  test(`invalid/${name}`, async () => {
    const path = join(dir, name);
    const header = /^# expect: error\[(LP\d{4})\] at (\d+):(\d+)/.exec(readFileSync(path, 'utf8'));
    assert.ok(header, `${name} lacks an "# expect: error[CODE] at LINE:COL" first line`);
    const [, code, line, column] = header;
    const result = await validate(path);
    assert.equal(result.ok, false);
    const got = result.errors.map((e) => `${e.code} ${e.location?.line}:${e.location?.column} ${e.message}`);
    assert.equal(result.errors.length, 1, `expected one error, got:\n${got.join('\n')}`);
    const e = result.errors[0]!;
    assert.equal(`${e.code} ${e.location?.file}:${e.location?.line}:${e.location?.column}`, `${code} ${path}:${line}:${column}`, e.message);
  });
}
