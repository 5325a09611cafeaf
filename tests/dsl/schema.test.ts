// The schema itself: compiles under ajv's strict mode, covers every registered stage kind, and every shipped
// recipe (examples/, pipelines/) validates against it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { recipeSchema, recipeValidator, referenceFields, stageKinds } from '../../src/dsl/schema.js';
import { validate } from '../../src/index.js';

test('the schema compiles in strict mode and forbids unknown keys in every object', () => {
  assert.equal(typeof recipeValidator(), 'function');
  const open: string[] = [];
  const walk = (node: unknown, path: string): void => {
    if (Array.isArray(node)) { node.forEach((n, i) => walk(n, `${path}/${i}`)); return; }
    if (node === null || typeof node !== 'object') return;
    const s = node as Record<string, unknown>;
    if (s.type === 'object' && s.properties && s.additionalProperties !== false) open.push(path);
    for (const [k, v] of Object.entries(s)) walk(v, `${path}/${k}`);
  };
  walk(recipeSchema(), '#');
  assert.deepEqual(open, []);
});

test('every stage kind of DESIGN.md is in the schema with its output kind', () => {
  const kinds = Object.fromEntries([...stageKinds().values()].map((k) => [k.kind, k.outputKind]));
  assert.deepEqual(kinds, {
    group: 'groups', score: 'scores', aggregate: 'importance', prune: 'model',
    'lora-finetune': 'model', train: 'model', evaluate: 'metrics',
  });
});

test('reference fields and the kinds they accept come from x-lopper-ref', () => {
  const fields = (kind: string) => referenceFields(kind).map((f) => `${f.path.join('.')}:${f.kind}`);
  assert.deepEqual(fields('score'), ['groups:groups', 'calibration.dataset:dataset']);
  assert.deepEqual(fields('prune'), ['importance:importance']);
  assert.deepEqual(fields('evaluate'), ['models.*:model', 'perplexity.datasets.*:dataset', 'zero_shot.tasks.*.dataset:dataset']);
  assert.deepEqual(fields('train'), ['dataset:dataset', 'val_dataset:dataset', 'tokenizer.from:model']);
});

test('implemented stage modules agree with the schema on their output kind', async (t) => {
  let registry: ReadonlyMap<string, { kind: string; version: string; outputKind: string }>;
  try {
    ({ stageRegistry: registry } = await import('../../src/stages/registry.js'));
  } catch (e) {
    t.skip(`src/stages/registry.ts does not load yet: ${(e as Error).message}`);
    return;
  }
  assert.deepEqual([...registry.keys()].sort(), [...stageKinds().keys()].sort());
  // Scaffolds (version "0") still carry a placeholder output kind.
  for (const m of [...registry.values()].filter((m) => m.version !== '0')) {
    assert.equal(m.outputKind, stageKinds().get(m.kind)!.outputKind, `stage module ${m.kind}`);
  }
});

for (const dir of ['examples', 'pipelines']) {
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    test(`${dir}/${name} validates and carries the editor modeline`, async () => {
      const path = join(dir, name);
      assert.match(readFileSync(path, 'utf8'), /^# yaml-language-server: \$schema=\.\.\/schema\/pipeline\.schema\.json$/m);
      const r = await validate(path);
      assert.deepEqual(r.errors.map((e) => `${e.code} ${e.location?.line}:${e.location?.column} ${e.message}`), []);
      assert.ok(r.ok);
      // Only missing files may warn (real checkpoints a user fills in).
      assert.deepEqual([...new Set(r.warnings.map((w) => w.code))].filter((c) => c !== 'LP2008'), []);
    });
  }
}
