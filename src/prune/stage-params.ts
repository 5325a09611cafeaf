// Reading the pruning stages' recipe parameters (docs/recipe-fields.md) out of ctx.params, with LopperErrors that
// name the stage and field. The schema validates recipes first; these checks protect direct API callers.
import { LopperError } from '../errors/lopper-error.js';

export function stringParam(params: Record<string, unknown>, key: string, stage: string): string {
  const v = params[key];
  if (typeof v !== 'string' || v === '') throw new LopperError('LP4009', `stage "${stage}": \`${key}\` must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

export function enumParam<T extends string>(params: Record<string, unknown>, key: string, allowed: readonly T[], fallback: T, stage: string): T {
  const v = params[key] ?? fallback;
  if (!allowed.includes(v as T)) {
    throw new LopperError('LP4009', `stage "${stage}": \`${key}\` must be one of ${allowed.join(' | ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

export function optionalNumber(params: Record<string, unknown>, key: string, stage: string): number | undefined {
  const v = params[key];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new LopperError('LP4009', `stage "${stage}": \`${key}\` must be a number, got ${JSON.stringify(v)}`);
  return n;
}

export function rangeParam(v: unknown, what: string, stage: string): [number, number] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => Number.isInteger(x))) {
    throw new LopperError('LP4001', `stage "${stage}": ${what} must be [start, end] (integers, end-exclusive), got ${JSON.stringify(v)}`);
  }
  return [v[0] as number, v[1] as number];
}

/** `attention: { layers: [a, b] }` → [a, b]. */
export function nestedRange(params: Record<string, unknown>, key: string, stage: string): [number, number] | undefined {
  const v = params[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new LopperError('LP4001', `stage "${stage}": \`${key}\` must be { layers: [start, end] }`);
  return rangeParam((v as Record<string, unknown>).layers, `\`${key}.layers\``, stage);
}
