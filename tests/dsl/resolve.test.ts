// vars, --set overrides, matrix expansion, defaults, and reporting every error at once with its position.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveRecipeText } from '../../src/dsl/resolve.js';
import { validate, LopperErrors } from '../../src/index.js';
import { checkRecipe } from '../../src/plan/plan.js';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const recipe = (stages: string, extra = ''): string => `version: 1
name: t
${extra}models:
  base: { path: model }
datasets:
  text: { path: text.txt, format: text }
stages:
${stages}`;

const chain = `  groups: { kind: group, model: base, mlp: { layers: [0, 2] } }
  scores: { kind: score, groups: groups, importance: l2 }
  importance: { kind: aggregate, scores: scores }
`;

function errorsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof LopperErrors) return e.errors.map((x) => `${x.code} ${x.location?.line}:${x.location?.column}`);
    throw e;
  }
  return [];
}

test('a whole-value ${vars.x} keeps its type; inside a string it is formatted', () => {
  const r = resolveRecipeText(recipe(chain + '  pruned: { kind: prune, importance: importance, ratio: "${vars.ratio}", description: "ratio ${vars.ratio} of ${vars.name}" }\n',
    'vars: { ratio: 0.25, name: base }\n'), 'r.yaml', '/tmp/r.yaml');
  const pruned = r.stages.find((s) => s.id === 'pruned')!.variants[0]!.params as Record<string, unknown>;
  assert.equal(pruned.ratio, 0.25);
  assert.equal(pruned.description, 'ratio 0.25 of base');
});

test('a list var embedded in a longer string is an error (LP1011), a list var as a whole value is a list', () => {
  assert.deepEqual(errorsOf(() => resolveRecipeText(recipe(chain.replace('[0, 2]', '"${vars.layers}"') + '  p: { kind: prune, importance: importance, ratio: 0.1, description: "of ${vars.layers}" }\n',
    'vars: { layers: [0, 2] }\n'), 'r.yaml', '/tmp/r.yaml')), ['LP1011 12:70']);
  const r = resolveRecipeText(recipe(chain.replace('[0, 2]', '"${vars.layers}"'), 'vars: { layers: [0, 2] }\n'), 'r.yaml', '/tmp/r.yaml');
  assert.deepEqual((r.stages[0]!.variants[0]!.params as { mlp: { layers: unknown } }).mlp.layers, [0, 2]);
});

test('--set overrides vars before substitution and any recipe field directly, values read as YAML', () => {
  const text = recipe(chain + '  pruned: { kind: prune, importance: importance, ratio: "${vars.ratio}" }\n', 'vars: { ratio: 0.25 }\n');
  const a = resolveRecipeText(text, 'r.yaml', '/tmp/r.yaml', { set: ['vars.ratio=0.5'] });
  assert.equal((a.stages[3]!.variants[0]!.params as { ratio: number }).ratio, 0.5);
  const b = resolveRecipeText(text, 'r.yaml', '/tmp/r.yaml', { set: ['stages.pruned.ratio=0.125', 'stages.groups.mlp.layers=[1, 2]', 'seed=7'] });
  assert.equal((b.stages[3]!.variants[0]!.params as { ratio: number }).ratio, 0.125);
  assert.deepEqual((b.stages[0]!.variants[0]!.params as { mlp: { layers: number[] } }).mlp.layers, [1, 2]);
  assert.equal(b.recipe.seed, 7);
});

test('an invalid value from --set is reported against the --set argument', () => {
  try {
    resolveRecipeText(recipe(chain + '  pruned: { kind: prune, importance: importance, ratio: 0.25 }\n'), 'r.yaml', '/tmp/r.yaml', { set: ['stages.pruned.ratio=2'] });
    assert.fail('expected an error');
  } catch (e) {
    assert.ok(e instanceof LopperErrors);
    assert.equal(e.errors.length, 1);
    assert.equal(e.errors[0]!.code, 'LP1007');
    assert.equal(e.errors[0]!.location?.file, '--set stages.pruned.ratio=2');
  }
});

test('schema defaults are filled into every stage', () => {
  const r = resolveRecipeText(recipe(`  groups: { kind: group, model: base, mlp: { layers: [0, 2] } }
  scores: { kind: score, groups: groups, calibration: { dataset: text } }
`), 'r.yaml', '/tmp/r.yaml');
  assert.deepEqual(r.stages[1]!.variants[0]!.params, {
    kind: 'score', groups: 'groups', importance: 'taylor', taylor: 'param_first',
    calibration: { dataset: 'text', samples: 10, seq_len: 64, sampling: 'sequential' },
  });
  assert.equal((r.stages[0]!.variants[0]!.params as { mode: string }).mode, 'block');
  assert.equal(r.recipe.seed, 42);
  assert.deepEqual(r.recipe.runtime, { backend: 'auto', precision: 'float32' });
});

test('matrix: one variant per combination, last variable fastest, ${matrix.x} substituted with its type', () => {
  const r = resolveRecipeText(recipe(chain + `  pruned:
    kind: prune
    importance: importance
    ratio: "\${matrix.ratio}"
    scope: "\${matrix.scope}"
    matrix: { scope: [local, global], ratio: [0.25, 0.5] }
`), 'r.yaml', '/tmp/r.yaml');
  const pruned = r.stages.find((s) => s.id === 'pruned')!;
  assert.deepEqual(pruned.variants.map((v) => v.binding), [
    { scope: 'local', ratio: 0.25 }, { scope: 'local', ratio: 0.5 }, { scope: 'global', ratio: 0.25 }, { scope: 'global', ratio: 0.5 },
  ]);
  assert.deepEqual(pruned.variants.map((v) => (v.params as { ratio: number }).ratio), [0.25, 0.5, 0.25, 0.5]);
  assert.ok(pruned.variants.every((v) => !('matrix' in (v.params as object))));
});

test('every error of a recipe is reported at once, sorted by position', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lopper-resolve-'));
  const path = join(dir, 'r.yaml');
  writeFileSync(path, `version: 1
name: many
sed: 1
models:
  base: { path: model }
datasets:
  text: { path: text.txt, format: text }
stages:
  groups: { kind: group, model: base, mlp: { layers: [3, 1] } }
  scores: { kind: score, groups: groups, importance: l3 }
  importance: { kind: aggregate, scores: groups }
  pruned: { kind: prune, importance: importance, ratio: 1.5 }
  report: { kind: evaluate, models: [base, pruned, nope] }
`);
  const r = await validate(path);
  assert.deepEqual(r.errors.map((e) => `${e.code} ${e.location?.line}:${e.location?.column}`), [
    'LP1003 3:1', // unknown key sed
    'LP2006 9:54', // empty layer range
    'LP1006 10:54', // importance l3
    'LP2002 11:42', // aggregate.scores names a group stage
    'LP1007 12:57', // ratio 1.5
    'LP2001 13:52', // unknown model nope
  ]);
});

test('checkRecipe without errors keeps stage order topological and reports missing files as asked', () => {
  const r = resolveRecipeText(recipe(`  importance: { kind: aggregate, scores: scores }
  scores: { kind: score, groups: groups, importance: l2 }
  groups: { kind: group, model: base, mlp: { layers: [0, 2] } }
`), 'r.yaml', '/nonexistent/r.yaml');
  const checked = checkRecipe(r, { missingFiles: 'warning' });
  assert.deepEqual(checked.instances.map((i) => i.id), ['groups', 'scores', 'importance']);
  assert.deepEqual(checked.warnings.map((w) => `${w.code} ${w.location?.line}:${w.location?.column}`), ['LP2008 4:17', 'LP2008 6:17']);
  assert.deepEqual(errorsOf(() => checkRecipe(r, { missingFiles: 'error' })), ['LP2008 4:17', 'LP2008 6:17']);
});
