// `${vars.name}` / `${matrix.name}` substitution. A string that is exactly one reference takes the referenced value
// with its type (`ratio: ${vars.ratio}` stays a number; a list stays a list); references inside a longer string are
// formatted into it. Nested values are reached with dots: `${vars.layers.0}`.
import type { DataPath } from './source.js';
import { didYouMean } from './suggest.js';

export type Namespace = 'vars' | 'matrix';

export interface InterpolationProblem {
  code: 'LP1010' | 'LP1011';
  path: DataPath;
  message: string;
  hint?: string;
}

export interface InterpolationScope {
  /** Namespaces with values; a namespace that is absent here and not in `keep` is an error. */
  values: Partial<Record<Namespace, Record<string, unknown>>>;
  /** Namespaces left untouched (e.g. `matrix` while resolving vars). */
  keep?: ReadonlySet<Namespace>;
  /** Why a namespace is unavailable, for the error message. */
  unavailable?: Partial<Record<Namespace, string>>;
}

/** Marks a value produced by a whole-value reference, so errors about it can point at the source variable. */
export interface Substitution { path: DataPath; namespace: Namespace; name: string }

const REF = /\$\{([^}]*)\}/g;
const EXPR = /^\s*([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+)*)\s*$/;

export function containsReference(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('${');
  if (Array.isArray(value)) return value.some(containsReference);
  if (value !== null && typeof value === 'object') return Object.values(value).some(containsReference);
  return false;
}

/** Returns `value` with references replaced; problems and whole-value substitutions are appended to the arrays. */
export function interpolate(
  value: unknown, path: DataPath, scope: InterpolationScope,
  problems: InterpolationProblem[], substitutions: Substitution[] = [],
): unknown {
  if (typeof value === 'string') return interpolateString(value, path, scope, problems, substitutions);
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, [...path, i], scope, problems, substitutions));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, [...path, k], scope, problems, substitutions);
    return out;
  }
  return value;
}

function interpolateString(
  text: string, path: DataPath, scope: InterpolationScope,
  problems: InterpolationProblem[], substitutions: Substitution[],
): unknown {
  if (!text.includes('${')) return text;
  const withoutRefs = text.replace(REF, '');
  if (withoutRefs.includes('${')) {
    problems.push({ code: 'LP1011', path, message: `unterminated "\${" in ${JSON.stringify(text)}`, hint: 'write ${vars.name} or ${matrix.name}' });
    return text;
  }
  const whole = /^\$\{[^}]*\}$/.test(text);
  let failed = false;
  const lookup = (expr: string): { value: unknown; keep: boolean } | undefined => {
    const m = EXPR.exec(expr);
    if (!m) {
      problems.push({ code: 'LP1011', path, message: `cannot read \${${expr}}`, hint: 'write ${vars.name} or ${matrix.name} (nested: ${vars.name.key})' });
      return undefined;
    }
    const [, ns, name, rest] = m;
    if (ns !== 'vars' && ns !== 'matrix') {
      problems.push({ code: 'LP1011', path, message: `unknown namespace "${ns}" in \${${expr.trim()}}${didYouMean(ns!, ['vars', 'matrix'])}`, hint: 'references are ${vars.name} or ${matrix.name}' });
      return undefined;
    }
    if (scope.keep?.has(ns)) return { value: undefined, keep: true };
    const values = scope.values[ns];
    if (!values) {
      problems.push({ code: 'LP1010', path, message: `\${${expr.trim()}}: ${scope.unavailable?.[ns] ?? `no ${ns} here`}` });
      return undefined;
    }
    if (!Object.prototype.hasOwnProperty.call(values, name!)) {
      const known = Object.keys(values);
      problems.push({
        code: 'LP1010', path,
        message: `unknown variable "${ns}.${name}"${didYouMean(name!, known)}`,
        hint: known.length ? `defined ${ns}: ${known.join(', ')}` : ns === 'vars' ? 'define it under vars: at the top of the recipe' : undefined,
      });
      return undefined;
    }
    let v: unknown = values[name!];
    for (const seg of (rest ?? '').split('.').filter(Boolean)) {
      if (v !== null && typeof v === 'object' && Object.prototype.hasOwnProperty.call(v, seg)) v = (v as Record<string, unknown>)[seg];
      else {
        problems.push({ code: 'LP1010', path, message: `"${ns}.${name}${rest}" does not exist: ${ns}.${name} has no "${seg}"` });
        return undefined;
      }
    }
    return { value: v, keep: false };
  };

  if (whole) {
    const expr = text.slice(2, -1);
    const r = lookup(expr);
    if (!r) return text;
    if (r.keep) return text;
    const m = EXPR.exec(expr)!;
    substitutions.push({ path, namespace: m[1] as Namespace, name: m[2]! });
    return structuredClone(r.value);
  }
  const out = text.replace(REF, (match, expr: string) => {
    const r = lookup(expr);
    if (!r) { failed = true; return match; }
    if (r.keep) return match;
    if (r.value !== null && typeof r.value === 'object') {
      problems.push({ code: 'LP1011', path, message: `\${${expr.trim()}} is a ${Array.isArray(r.value) ? 'list' : 'mapping'} and cannot be part of a longer string`, hint: 'use it as the whole value' });
      failed = true;
      return match;
    }
    return String(r.value);
  });
  return failed ? text : out;
}
