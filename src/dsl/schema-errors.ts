// ajv errors → LopperErrors with codes, positions and "did you mean". ajv reports every failing branch of an
// anyOf/oneOf; this keeps the one a user means (the ${...} alternative is never what they meant; of a oneOf, the
// branch with the fewest errors) so each mistake is reported once.
import type { ErrorObject } from 'ajv';
import { LopperError } from '../errors/lopper-error.js';
import type { SourceLocation } from '../errors/lopper-error.js';
import { formatPath } from './source.js';
import type { DataPath } from './source.js';
import { allowedProperties, stageKinds } from './schema.js';
import type { JsonSchema } from './schema.js';
import { didYouMean } from './suggest.js';

export type Locator = (path: DataPath, at: 'key' | 'value') => SourceLocation;

function pointerSegments(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer.slice(1).split('/').map((s) => {
    const seg = s.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^\d+$/.test(seg) ? Number(seg) : seg;
  });
}

/** The part of a schemaPath that identifies the branch of the innermost oneOf/anyOf it went through. */
function branchOf(e: ErrorObject, combinator: string): { prefix: string; index: number } | undefined {
  const re = new RegExp(`^(.*/${combinator})/(\\d+)(/|$)`);
  const m = re.exec(e.schemaPath);
  return m ? { prefix: m[1]!, index: Number(m[2]) } : undefined;
}

function filterErrors(errors: ErrorObject[]): ErrorObject[] {
  // The ${...} alternative of a scalar field: after interpolation no value is meant to match it.
  let out = errors.filter((e) => !e.schemaPath.startsWith('#/$defs/interpolation') && e.keyword !== 'if');

  // oneOf: keep the errors of the branch with the fewest errors (per instance path and oneOf).
  const oneOfs = out.filter((e) => e.keyword === 'oneOf');
  for (const o of oneOfs) {
    const members = out.filter((e) => e !== o && e.instancePath.startsWith(o.instancePath) && branchOf(e, 'oneOf')?.prefix === o.schemaPath);
    if (members.length === 0) continue;
    const counts = new Map<number, number>();
    for (const m of members) counts.set(branchOf(m, 'oneOf')!.index, (counts.get(branchOf(m, 'oneOf')!.index) ?? 0) + 1);
    const onlyUnknownKeys = members.every((m) => m.keyword === 'additionalProperties');
    if (onlyUnknownKeys && counts.size > 1) {
      // Every form rejects a key the other form allows: the fields of two forms are mixed.
      out = out.filter((e) => !members.includes(e));
      (o as ErrorObject & { mixedForms?: boolean }).mixedForms = true;
      continue;
    }
    const best = [...counts.entries()].sort((a, b) => a[1] - b[1] || a[0] - b[0])[0]![0];
    out = out.filter((e) => e === o ? false : !members.includes(e) || branchOf(e, 'oneOf')!.index === best);
  }

  // anyOf: drop the summary when a branch error says more; merge `type` errors of the same value.
  out = out.filter((e) => e.keyword !== 'anyOf' || !out.some((f) => f !== e && f.keyword !== 'anyOf' && f.instancePath.startsWith(e.instancePath)));
  const merged: ErrorObject[] = [];
  for (const e of out) {
    if (e.keyword === 'type') {
      const same = merged.find((m) => m.keyword === 'type' && m.instancePath === e.instancePath);
      if (same) {
        const types = new Set([...String(same.params.type).split(','), ...String(e.params.type).split(',')]);
        same.params = { ...same.params, type: [...types].join(',') };
        continue;
      }
    }
    // A value of the wrong type also fails the other branch's keywords: report the type only.
    merged.push({ ...e });
  }
  return merged.filter((e) => e.keyword === 'type' || !merged.some((t) => t.keyword === 'type' && t.instancePath === e.instancePath && e.keyword !== 'additionalProperties' && e.keyword !== 'required'));
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

const typeNames: Record<string, string> = {
  number: 'a number', integer: 'an integer', string: 'a string', boolean: 'true or false',
  object: 'a mapping', array: 'a list', null: 'null',
};

function joinOr(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

/** Converts ajv errors of the data at `prefix` to located LopperErrors, sorted by position, deduplicated. */
export function schemaErrors(ajvErrors: ErrorObject[], prefix: DataPath, locate: Locator): LopperError[] {
  const out: LopperError[] = [];
  for (const e of filterErrors(ajvErrors)) {
    const path = [...prefix, ...pointerSegments(e.instancePath)];
    const where = formatPath(path) || 'the recipe';
    const parent = e.parentSchema as JsonSchema | undefined;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String(e.params.additionalProperty);
        const allowed = allowedProperties(parent);
        out.push(new LopperError('LP1003', `unknown key "${key}" in ${where}${didYouMean(key, allowed)}`, {
          location: locate([...path, key], 'key'),
          hint: allowed.length ? `allowed keys: ${allowed.join(', ')}` : undefined,
        }));
        break;
      }
      case 'required': {
        const field = String(e.params.missingProperty);
        out.push(new LopperError('LP1004', `${where} is missing the required field "${field}"`, {
          location: locate(path, 'key'),
          hint: field === 'calibration' ? 'importance: taylor needs gradients, so it needs calibration: { dataset: ... }' : undefined,
        }));
        break;
      }
      case 'discriminator': {
        if (e.params.error === 'mapping') {
          const kind = String(e.params.tagValue);
          const kinds = [...stageKinds().keys()];
          out.push(new LopperError('LP1008', `unknown stage kind "${kind}" in ${where}${didYouMean(kind, kinds)}`, {
            location: locate([...path, 'kind'], 'value'), hint: `stage kinds: ${kinds.join(', ')}`,
          }));
        } else {
          out.push(new LopperError('LP1004', `${where} is missing the required field "kind"`, {
            location: locate(path, 'key'), hint: `stage kinds: ${[...stageKinds().keys()].join(', ')}`,
          }));
        }
        break;
      }
      case 'type': {
        const expected = String(e.params.type).split(',').map((t) => typeNames[t] ?? t);
        out.push(new LopperError('LP1005', `${where} must be ${joinOr(expected)}, not ${describe(e.data)}`, { location: locate(path, 'value') }));
        break;
      }
      case 'enum': {
        const allowed = (e.params.allowedValues as unknown[]).map(String);
        const got = String(e.data);
        out.push(new LopperError('LP1006', `${where} must be one of ${allowed.join(', ')}, not ${JSON.stringify(e.data)}${typeof e.data === 'string' ? didYouMean(got, allowed) : ''}`, {
          location: locate(path, 'value'),
        }));
        break;
      }
      case 'const':
        out.push(new LopperError('LP1006', `${where} must be ${JSON.stringify(e.params.allowedValue)}, not ${JSON.stringify(e.data)}`, { location: locate(path, 'value') }));
        break;
      case 'minimum': case 'maximum': case 'exclusiveMinimum': case 'exclusiveMaximum': {
        const ratioHint = path[path.length - 1] === 'ratio' ? 'a ratio is the fraction removed: 0 <= ratio < 1' : undefined;
        out.push(new LopperError('LP1007', `${where} must be ${String(e.params.comparison)} ${String(e.params.limit)}, not ${String(e.data)}`, {
          location: locate(path, 'value'), hint: ratioHint,
        }));
        break;
      }
      case 'propertyNames': case 'pattern': {
        if (e.keyword === 'pattern' && e.propertyName === undefined) {
          out.push(new LopperError('LP1006', `${where} ${JSON.stringify(e.data)} does not match ${String(e.params.pattern)}`, { location: locate(path, 'value') }));
          break;
        }
        const name = String(e.propertyName ?? e.params.propertyName);
        if (e.keyword === 'propertyNames' && ajvErrors.some((f) => f.keyword === 'pattern' && f.propertyName === name)) break;
        out.push(new LopperError('LP1009', `invalid name "${name}" in ${where}`, {
          location: locate([...path, name], 'key'),
          hint: 'names use letters, digits, "_" and "-", and start with a letter or "_" ("@" and "." are reserved for matrix instances and paths)',
        }));
        break;
      }
      case 'oneOf': {
        if ((e as ErrorObject & { mixedForms?: boolean }).mixedForms) {
          const forms = ((parent?.oneOf as JsonSchema[]) ?? []).map((b) => `{ ${allowedProperties(b).join(', ')} }`);
          out.push(new LopperError('LP1015', `${where} mixes fields of different forms; use one of ${forms.join(' or ')}`, { location: locate(path, 'key') }));
        } else {
          out.push(new LopperError('LP1017', `${where} ${e.message ?? 'is invalid'}`, { location: locate(path, 'value') }));
        }
        break;
      }
      default: {
        let message = `${where} ${e.message ?? 'is invalid'}`;
        if (e.keyword === 'minItems' || e.keyword === 'maxItems' || e.keyword === 'items' || e.keyword === 'prefixItems') {
          const exact = parent && parent.minItems === parent.maxItems && parent.minItems !== undefined ? Number(parent.minItems) : undefined;
          message = exact !== undefined ? `${where} must be a list of exactly ${exact} items` : `${where} ${e.message ?? 'has the wrong number of items'}`;
        }
        out.push(new LopperError('LP1017', message, { location: locate(path, 'value') }));
      }
    }
  }
  return out;
}

/** Sorts by position and drops exact repeats (the same mistake seen through several matrix instances). */
export function dedupeAndSort(errors: LopperError[]): LopperError[] {
  const seen = new Set<string>();
  const unique = errors.filter((e) => {
    const k = `${e.code}|${e.location?.file}|${e.location?.line}|${e.location?.column}|${e.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return unique.sort((a, b) => (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.location?.column ?? 0) - (b.location?.column ?? 0));
}
