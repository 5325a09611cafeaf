// The error catalog: every code is LPxxxx in its area's range, names are unique PascalCase, and every code the
// code raised anywhere in src is registered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { errorCatalog } from '../../src/errors/catalog.js';

test('codes are LPxxxx, names unique PascalCase', () => {
  const entries = Object.entries(errorCatalog);
  assert.ok(entries.length > 0);
  const names = new Set<string>();
  for (const [code, info] of entries) {
    assert.match(code, /^LP[1-8]\d{3}$/);
    assert.equal(info.code, code);
    assert.match(info.name, /^[A-Z][A-Za-z0-9]+$/, code);
    assert.ok(info.title.length > 0, code);
    assert.ok(!names.has(info.name), `duplicate name ${info.name}`);
    names.add(info.name);
  }
});

test('every LPxxxx code raised anywhere in src is in the catalog', () => {
  const raised = new Set<string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts') && !name.endsWith('error-codes.ts')) {
        for (const m of readFileSync(path, 'utf8').matchAll(/'(LP\d{4})'/g)) raised.add(m[1]!);
      }
    }
  };
  walk('src');
  assert.ok(raised.size > 10);
  assert.deepEqual([...raised].filter((c) => !(c in errorCatalog)), []);
});
