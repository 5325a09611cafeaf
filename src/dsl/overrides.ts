// `--set key.path=value` overrides, applied to the recipe data before vars are substituted (so
// `--set vars.ratio=0.5` reaches every `${vars.ratio}`). The value is read as YAML: `0.5` is a number, `[4, 30]` a
// list, `true` a boolean, anything that is not YAML a plain string.
import { parse } from 'yaml';
import { LopperError } from '../errors/lopper-error.js';

export interface Override { path: string[]; value: unknown; text: string }

export function parseOverride(text: string): Override {
  const eq = text.indexOf('=');
  const key = eq < 0 ? '' : text.slice(0, eq).trim();
  if (eq < 0 || key === '') {
    throw new LopperError('LP1012', `--set ${JSON.stringify(text)} is not key.path=value`, {
      location: { file: '--set' }, hint: 'for example --set vars.ratio=0.5 or --set stages.pruned.ratio=0.5',
    });
  }
  const path = key.split('.');
  if (path.some((p) => p === '')) {
    throw new LopperError('LP1012', `--set ${JSON.stringify(text)}: empty segment in "${key}"`, { location: { file: '--set' } });
  }
  const raw = text.slice(eq + 1);
  let value: unknown;
  try {
    value = raw.trim() === '' ? '' : parse(raw);
  } catch {
    value = raw;
  }
  return { path, value, text };
}

/** Returns a copy of `data` with every override applied, in order. */
export function applyOverrides(data: unknown, overrides: readonly Override[]): unknown {
  if (overrides.length === 0) return data;
  const root = structuredClone(data ?? {}) as Record<string, unknown>;
  for (const o of overrides) {
    let node: unknown = root;
    for (let i = 0; i < o.path.length; i++) {
      const seg = o.path[i]!;
      const last = i === o.path.length - 1;
      if (Array.isArray(node)) {
        const idx = Number(seg);
        if (!Number.isInteger(idx) || idx < 0 || idx > node.length) {
          throw new LopperError('LP1012', `--set ${o.text}: "${o.path.slice(0, i).join('.')}" is a list and "${seg}" is not an index in it`, { location: { file: '--set' } });
        }
        if (last) node[idx] = o.value;
        else node = node[idx] ??= {};
      } else if (node !== null && typeof node === 'object') {
        const obj = node as Record<string, unknown>;
        if (last) obj[seg] = o.value;
        else {
          if (obj[seg] === undefined || obj[seg] === null) obj[seg] = {};
          node = obj[seg];
        }
      } else {
        throw new LopperError('LP1012', `--set ${o.text}: "${o.path.slice(0, i).join('.')}" is ${JSON.stringify(node)}, not a mapping`, { location: { file: '--set' } });
      }
    }
  }
  return root;
}

/** Whether `path` is at or below an overridden path (its value came from the command line, not the file). */
export function overriddenBy(path: readonly (string | number)[], overrides: readonly Override[]): Override | undefined {
  for (let i = overrides.length - 1; i >= 0; i--) {
    const o = overrides[i]!;
    if (o.path.length <= path.length && o.path.every((seg, j) => seg === String(path[j]))) return o;
  }
  return undefined;
}
