// src/dsl/recipe-types.ts is generated from schema/pipeline.schema.json; it must not drift from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

test('src/dsl/recipe-types.ts is what `npm run gen:types` generates from the schema', async () => {
  const { generateRecipeTypes, typesFile } = (await import('../../scripts/gen-types.mjs')) as {
    generateRecipeTypes(): Promise<string>; typesFile: string;
  };
  const expected = await generateRecipeTypes();
  assert.equal(readFileSync(typesFile, 'utf8'), expected, 'stale: run `npm run gen:types`');
});
