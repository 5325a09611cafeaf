// The recipe JSON Schema (schema/pipeline.schema.json, the single source of truth) and what lopper reads from it:
// the ajv validators, the stage kinds with their output kinds (`x-lopper-output`), and where each stage kind holds
// references and of which kind (`x-lopper-ref`).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import type { OutputKind } from '../stages/types.js';

export type JsonSchema = { [keyword: string]: unknown };

/** What a reference field accepts: a model (a `models:` entry or a model-producing stage), a dataset, or a stage output. */
export type RefKind = 'model' | 'dataset' | 'groups' | 'scores' | 'importance';

/** Absolute path of schema/pipeline.schema.json (src/dsl and dist/dsl are both two levels below the package root). */
export const schemaPath = fileURLToPath(new URL('../../schema/pipeline.schema.json', import.meta.url));

let cachedSchema: JsonSchema | undefined;
export function recipeSchema(): JsonSchema {
  cachedSchema ??= JSON.parse(readFileSync(schemaPath, 'utf8')) as JsonSchema;
  return cachedSchema;
}

let cachedAjv: Ajv2020 | undefined;
function ajv(): Ajv2020 {
  if (cachedAjv) return cachedAjv;
  const instance = new Ajv2020({
    allErrors: true, verbose: true, discriminator: true,
    strictSchema: true, strictTuples: true, strictTypes: true, strictRequired: false, allowUnionTypes: true,
  });
  // Annotations: ajv ignores them, lopper and json-schema-to-typescript read them.
  instance.addKeyword({ keyword: 'x-lopper-ref', schemaType: 'string' });
  instance.addKeyword({ keyword: 'x-lopper-output', schemaType: 'string' });
  instance.addKeyword({ keyword: 'tsType', schemaType: 'string' });
  instance.addSchema(recipeSchema());
  cachedAjv = instance;
  return instance;
}

function schemaId(): string {
  return recipeSchema().$id as string;
}

/** Validates a whole (interpolated) recipe. */
export function recipeValidator(): ValidateFunction {
  return ajv().getSchema(schemaId())!;
}

/** Validates one (matrix-substituted) stage entry. */
export function stageValidator(): ValidateFunction {
  return ajv().getSchema(`${schemaId()}#/$defs/stage`)!;
}

export function resolveRef(schema: JsonSchema): JsonSchema {
  let s = schema;
  while (typeof s.$ref === 'string') {
    const ref = s.$ref;
    if (!ref.startsWith('#/$defs/')) throw new Error(`unsupported $ref ${ref}`);
    s = (recipeSchema().$defs as Record<string, JsonSchema>)[ref.slice('#/$defs/'.length)]!;
  }
  return s;
}

export interface StageKindInfo {
  kind: string;
  outputKind: OutputKind;
  schema: JsonSchema;
}

let cachedKinds: Map<string, StageKindInfo> | undefined;
/** Stage kinds in schema order. */
export function stageKinds(): ReadonlyMap<string, StageKindInfo> {
  if (cachedKinds) return cachedKinds;
  const defs = recipeSchema().$defs as Record<string, JsonSchema>;
  const branches = (defs.stage!.oneOf as JsonSchema[]).map(resolveRef);
  cachedKinds = new Map(branches.map((schema) => {
    const kind = ((schema.properties as Record<string, JsonSchema>).kind!.const) as string;
    return [kind, { kind, outputKind: schema['x-lopper-output'] as OutputKind, schema }];
  }));
  return cachedKinds;
}

/** A reference field of a stage: its path inside the stage (`*` = every array item) and the kind it accepts. */
export interface RefField { path: (string | '*')[]; kind: RefKind }

const refFieldCache = new Map<string, RefField[]>();
/** Every place a stage of `kind` holds a reference, in schema property order. */
export function referenceFields(kind: string): RefField[] {
  const cached = refFieldCache.get(kind);
  if (cached) return cached;
  const info = stageKinds().get(kind);
  const out: RefField[] = [];
  const visit = (schema: JsonSchema, path: (string | '*')[]): void => {
    const s = resolveRef(schema);
    if (typeof s['x-lopper-ref'] === 'string') { out.push({ path, kind: s['x-lopper-ref'] as RefKind }); return; }
    for (const branch of [...((s.anyOf as JsonSchema[]) ?? []), ...((s.oneOf as JsonSchema[]) ?? [])]) visit(branch, path);
    if (s.properties) for (const [k, v] of Object.entries(s.properties as Record<string, JsonSchema>)) visit(v, [...path, k]);
    if (s.items && typeof s.items === 'object') visit(s.items as JsonSchema, [...path, '*']);
  };
  if (info) visit(info.schema, []);
  // anyOf/oneOf branches can repeat a path: keep the first.
  const unique = out.filter((f, i) => out.findIndex((g) => g.path.join('.') === f.path.join('.')) === i);
  refFieldCache.set(kind, unique);
  return unique;
}

/** Names of the properties a (sub)schema allows, for "did you mean" and hints. */
export function allowedProperties(schema: JsonSchema | undefined): string[] {
  if (!schema) return [];
  const s = resolveRef(schema);
  return Object.keys((s.properties as Record<string, unknown>) ?? {});
}
