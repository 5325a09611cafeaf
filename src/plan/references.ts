// Where a stage holds references (read from the schema's `x-lopper-ref` annotations) and what each name resolves to:
// a `models:` entry, a `datasets:` entry or a stage — checked against the kind the field accepts.
import { LopperError } from '../errors/lopper-error.js';
import type { Recipe } from '../dsl/recipe-types.js';
import { referenceFields, stageKinds } from '../dsl/schema.js';
import type { RefKind } from '../dsl/schema.js';
import { didYouMean } from '../dsl/suggest.js';
import type { OutputKind } from '../stages/types.js';

export interface RefUse {
  /** Path inside the stage entry, e.g. ['calibration', 'dataset'] or ['models', 1]. */
  path: (string | number)[];
  name: string;
  kind: RefKind;
}

/** Every reference a stage entry holds, in schema order. */
export function refUses(kind: string, params: unknown): RefUse[] {
  const out: RefUse[] = [];
  for (const field of referenceFields(kind)) {
    const walk = (value: unknown, rest: (string | '*')[], path: (string | number)[]): void => {
      if (rest.length === 0) {
        if (typeof value === 'string') out.push({ path, name: value, kind: field.kind });
        return;
      }
      const [seg, ...tail] = rest;
      if (seg === '*') {
        if (Array.isArray(value)) value.forEach((v, i) => walk(v, tail, [...path, i]));
      } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        walk((value as Record<string, unknown>)[seg!], tail, [...path, seg!]);
      }
    };
    walk(params, field.path, []);
  }
  return out;
}

export type RefTarget =
  | { type: 'model'; name: string }
  | { type: 'dataset'; name: string }
  | { type: 'stage'; id: string };

export interface StageInfo { id: string; kind: string; outputKind: OutputKind }

const wants: Record<RefKind, string> = {
  model: 'a model (a models: entry, or a prune, lora-finetune or train stage)',
  dataset: 'a datasets: entry',
  groups: 'a group stage',
  scores: 'a score stage',
  importance: 'an aggregate stage',
};

function stageKindsWithOutput(output: OutputKind): string[] {
  return [...stageKinds().values()].filter((k) => k.outputKind === output).map((k) => k.kind);
}

/** Resolves one name; a LopperError (without location) when it names nothing or something of the wrong kind. */
export function resolveRef(use: RefUse, stageId: string, recipe: Recipe, stages: ReadonlyMap<string, StageInfo>): RefTarget | LopperError {
  const models = recipe.models ?? {};
  const datasets = recipe.datasets ?? {};
  const has = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
  const stage = stages.get(use.name);
  const field = `stages.${stageId}${use.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('')}`;
  if (use.kind === 'dataset') {
    if (has(datasets, use.name)) return { type: 'dataset', name: use.name };
    if (stage || has(models, use.name)) {
      return new LopperError('LP2002', `${field} must name ${wants.dataset}, but "${use.name}" is ${stage ? `a ${stage.kind} stage` : 'a models: entry'}`, {
        hint: `datasets: ${Object.keys(datasets).join(', ') || '(none defined)'}`,
      });
    }
    return new LopperError('LP2001', `unknown dataset "${use.name}"${didYouMean(use.name, Object.keys(datasets))}`, {
      hint: `datasets: ${Object.keys(datasets).join(', ') || '(none defined)'}`,
    });
  }
  const output: OutputKind = use.kind;
  const fitting = [...stages.values()].filter((s) => s.outputKind === output).map((s) => s.id);
  const candidates = use.kind === 'model' ? [...Object.keys(models), ...fitting] : fitting;
  if (use.kind === 'model' && has(models, use.name)) return { type: 'model', name: use.name };
  if (stage && stage.outputKind === output) return { type: 'stage', id: stage.id };
  if (stage || has(models, use.name) || has(datasets, use.name)) {
    const is = stage ? `a ${stage.kind} stage (its output is ${stage.outputKind})` : has(models, use.name) ? 'a models: entry' : 'a datasets: entry';
    return new LopperError('LP2002', `${field} must name ${wants[use.kind]}, but "${use.name}" is ${is}`, {
      hint: candidates.length ? `candidates: ${candidates.join(', ')}` : `add a ${stageKindsWithOutput(output).join(' or ')} stage`,
    });
  }
  return new LopperError('LP2001', `unknown ${use.kind === 'model' ? 'model' : 'stage'} "${use.name}"${didYouMean(use.name, candidates)}`, {
    hint: candidates.length ? `${field} accepts: ${candidates.join(', ')}` : `${field} must name ${wants[use.kind]}`,
  });
}
