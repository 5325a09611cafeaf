// Fills schema `default`s into valid recipe data (ajv's useDefaults skips oneOf branches, where stages live).
import { resolveRef, stageKinds } from './schema.js';
import type { JsonSchema } from './schema.js';

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The oneOf branch `data` belongs to: by `kind` for stages, else the first whose required keys are present and
 *  whose properties cover every key. */
function branchFor(schema: JsonSchema, data: Record<string, unknown>): JsonSchema | undefined {
  const branches = (schema.oneOf as JsonSchema[]).map(resolveRef);
  if ((schema.discriminator as { propertyName?: string } | undefined)?.propertyName === 'kind') {
    return stageKinds().get(String(data.kind))?.schema;
  }
  return branches.find((b) => {
    const props = Object.keys((b.properties as object) ?? {});
    return ((b.required as string[]) ?? []).every((r) => r in data) && Object.keys(data).every((k) => props.includes(k));
  });
}

/** Returns a copy of `data` with defaults filled in wherever `schema` declares them. */
export function withDefaults(schema: JsonSchema, data: unknown): unknown {
  const s = resolveRef(schema);
  if (Array.isArray(data)) {
    const prefix = (s.prefixItems as JsonSchema[] | undefined) ?? [];
    const items = typeof s.items === 'object' ? (s.items as JsonSchema) : undefined;
    return data.map((v, i) => (prefix[i] ? withDefaults(prefix[i]!, v) : items ? withDefaults(items, v) : v));
  }
  if (!isObject(data)) return data;
  if (Array.isArray(s.oneOf)) {
    const branch = branchFor(s, data);
    return branch ? withDefaults(branch, data) : { ...data };
  }
  const out: Record<string, unknown> = { ...data };
  const props = (s.properties as Record<string, JsonSchema> | undefined) ?? {};
  for (const [key, sub] of Object.entries(props)) {
    const def = sub.default !== undefined ? sub.default : resolveRef(sub).default;
    if (out[key] === undefined && def !== undefined) out[key] = structuredClone(def);
    if (out[key] !== undefined) out[key] = withDefaults(sub, out[key]);
  }
  if (isObject(s.additionalProperties)) {
    for (const key of Object.keys(out)) {
      if (!(key in props)) out[key] = withDefaults(s.additionalProperties as JsonSchema, out[key]);
    }
  }
  return out;
}
