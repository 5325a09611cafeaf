// The cache key of a stage instance: sha256 of the canonical JSON of exactly what DESIGN.md "Runner semantics"
// lists — kind + implementation version, resolved params, the keys of its inputs, the content hashes of the files
// it reads, the seed, and what changes numerics. Nothing else (no paths, no descriptions, no timestamps).
import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level; `undefined` members dropped, as JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : sortKeys(v)));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeys(v);
    }
    return out;
  }
  return value;
}

export interface KeyInputs {
  kind: string;
  version: string;
  /** Resolved params (references rewritten to instance ids), without `description`. */
  params: Record<string, unknown>;
  /** Upstream instance id → its key. */
  inputs: Record<string, string>;
  /** `models.<name>` → { format, files: { relative name → sha256 } }. */
  models: Record<string, { format: string; files: Record<string, string> }>;
  /** `<name>` → dataset format/options and the file's sha256. */
  datasets: Record<string, { format: string; options: Record<string, unknown>; sha256: string }>;
  seed: number;
  numerics: { backend: string; precision: string };
}

export function stageKey(inputs: KeyInputs): string {
  return createHash('sha256').update(canonicalJson(inputs)).digest('hex');
}

/** Dotted paths of key inputs that differ between two key-input objects (for `explain`), sorted. */
export function changedKeyInputs(before: unknown, after: unknown, prefix = ''): string[] {
  if (canonicalJson(before) === canonicalJson(after)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(before) || !isObj(after)) return [prefix || '(root)'];
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  return keys.flatMap((k) => changedKeyInputs(before[k], after[k], prefix ? `${prefix}.${k}` : k));
}
