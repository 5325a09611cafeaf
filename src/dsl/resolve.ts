// Recipe text → resolved recipe: parse with positions, apply --set, substitute ${vars.x}, expand each stage's own
// matrix into substituted variants, validate everything against the schema, fill defaults. Every problem found on
// the way is collected and thrown at once as LopperErrors, each located in the YAML.
import { readFile } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import { LopperError, LopperErrors } from '../errors/lopper-error.js';
import type { SourceLocation } from '../errors/lopper-error.js';
import type { Recipe, Stage } from './recipe-types.js';
import { existsInSource, locate as locateInSource, parseSource } from './source.js';
import type { DataPath, RecipeSource } from './source.js';
import { applyOverrides, overriddenBy, parseOverride } from './overrides.js';
import type { Override } from './overrides.js';
import { interpolate } from './interpolate.js';
import type { InterpolationProblem, Substitution } from './interpolate.js';
import { recipeSchema, recipeValidator, stageValidator } from './schema.js';
import { dedupeAndSort, schemaErrors } from './schema-errors.js';
import type { Locator } from './schema-errors.js';
import { withDefaults } from './defaults.js';
import { fieldRuleErrors } from './field-rules.js';

export type MatrixValue = string | number | boolean;

export interface LoadOptions {
  /** `key.path=value` overrides (`--set`). */
  set?: readonly string[];
}

/** One variant of a stage for one combination of its own matrix values. */
export interface StageVariant {
  /** Own matrix values of this variant (empty without a matrix). */
  binding: Record<string, MatrixValue>;
  /** The stage entry with ${matrix.x} substituted and defaults filled; `matrix` removed. */
  params: Stage;
  /** Paths (inside the stage) whose value came whole from ${matrix.x}, → the matrix value's path. */
  matrixSources: { path: DataPath; source: DataPath }[];
}

export interface StageTemplate {
  /** Stage id as written under `stages:`. */
  id: string;
  kind: string;
  /** Own matrix variables in declaration order, with their values. */
  matrix: [string, MatrixValue[]][];
  variants: StageVariant[];
}

export interface ResolvedRecipe {
  /** The recipe path as given (printed in diagnostics). */
  file: string;
  /** Absolute path and directory of the recipe file. */
  path: string;
  dir: string;
  source: RecipeSource;
  overrides: Override[];
  /** Vars substituted, defaults filled; stages as written (matrix not expanded: see `stages`). */
  recipe: Recipe;
  /** Stages in recipe order. */
  stages: StageTemplate[];
  /** Location of a data path (key or value), aware of --set overrides. */
  locate: Locator;
  /** Stages left out of `stages` because they have errors (only in a partial result, see resolveRecipeParts). */
  invalidStages: InvalidStage[];
}

/** A stage with errors of its own; its references are still checked where they can be found. */
export interface InvalidStage { id: string; kind?: string; entry: unknown }

/** A resolved recipe as far as it could be resolved, and the errors found on the way. */
export interface ResolvedParts {
  /** Absent when the recipe is unusable as a whole; with errors, it holds only the stages without errors. */
  resolved?: ResolvedRecipe;
  errors: LopperError[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function problemErrors(problems: InterpolationProblem[], locate: Locator): LopperError[] {
  return problems.map((p) => new LopperError(p.code, p.message, { location: locate(p.path, 'value'), hint: p.hint }));
}

/** Own matrix combinations in declaration order (cartesian product, last variable varying fastest). */
function matrixCombos(matrix: [string, MatrixValue[]][]): Record<string, MatrixValue>[] {
  let combos: Record<string, MatrixValue>[] = [{}];
  for (const [name, values] of matrix) combos = combos.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
  return combos;
}

function validMatrix(m: unknown): m is Record<string, MatrixValue[]> {
  return isObject(m) && Object.keys(m).length > 0 && Object.values(m).every((vs) =>
    Array.isArray(vs) && vs.length > 0 && vs.every((v) => ['string', 'number', 'boolean'].includes(typeof v)));
}

/** A value whose ${...} could not be substituted also fails the schema: report the substitution problem only. */
function withoutEchoes(errors: LopperError[]): LopperError[] {
  const at = (e: LopperError): string => `${e.location?.file}:${e.location?.line}:${e.location?.column}`;
  const substitution = new Set(errors.filter((e) => e.code === 'LP1010' || e.code === 'LP1011').map(at));
  return errors.filter((e) => e.code === 'LP1010' || e.code === 'LP1011' || !substitution.has(at(e)));
}

/** Resolves recipe text; `file` is the path printed in diagnostics, `absPath` where it lives. Throws LopperErrors. */
export function resolveRecipeText(text: string, file: string, absPath: string = resolvePath(file), options: LoadOptions = {}): ResolvedRecipe {
  const { resolved, errors } = resolveRecipeParts(text, file, absPath, options);
  if (errors.length > 0 || !resolved) throw new LopperErrors(errors);
  return resolved;
}

/**
 * Resolves what can be resolved and collects every error. When the errors are confined to some stages, the result
 * holds the other stages, so the planner's checks (references, cycles, layer ranges) still run on them and
 * `validate` reports every problem at once.
 */
export function resolveRecipeParts(text: string, file: string, absPath: string = resolvePath(file), options: LoadOptions = {}): ResolvedParts {
  const parsed = parseSource(text, file);
  if (parsed.errors.length > 0) return { errors: dedupeAndSort(parsed.errors) };
  const source = parsed.source;

  let overrides: Override[];
  try {
    overrides = (options.set ?? []).map(parseOverride);
  } catch (e) {
    if (e instanceof LopperError) return { errors: [e] };
    throw e;
  }
  const locate: Locator = (path, at) => {
    const o = overriddenBy(path, overrides);
    if (o && !(o.path.length < path.length && existsInSource(source, path))) return { file: `--set ${o.text}` } satisfies SourceLocation;
    return locateInSource(source, path, at);
  };

  if (!isObject(parsed.data)) {
    return { errors: [new LopperError('LP1005', `a recipe must be a mapping (version, name, models, datasets, stages…), not ${parsed.data === null || parsed.data === undefined ? 'empty' : Array.isArray(parsed.data) ? 'a list' : typeof parsed.data}`, {
      location: locate([], 'value'),
    })] };
  }
  let data: Record<string, unknown>;
  try {
    data = applyOverrides(parsed.data, overrides) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof LopperError) return { errors: [e] };
    throw e;
  }
  const errors: LopperError[] = [];
  // Errors confined to a stage leave the rest checkable; any other error makes the recipe unusable as a whole.
  const invalid = new Set<string>();
  let fatal = false;
  const blame = (path: readonly (string | number)[], keyword?: string, missing?: unknown): void => {
    if (path[0] === 'stages' && typeof path[1] === 'string') invalid.add(path[1]);
    else if (path.length === 0) {
      // An unknown top-level key or a missing name leaves models/datasets/stages usable.
      if (keyword === 'type' || (keyword === 'required' && missing === 'stages')) fatal = true;
    } else if (path[0] === 'models' || path[0] === 'datasets' || path[0] === 'stages') fatal = true;
  };

  // ${vars.x} everywhere but in vars itself; ${matrix.x} stays for the per-stage pass.
  const vars = isObject(data.vars) ? data.vars : {};
  const problems: InterpolationProblem[] = [];
  const resolved: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    resolved[key] = key === 'vars' ? value : interpolate(value, [key], { values: { vars }, keep: new Set(['matrix']) }, problems);
  }
  errors.push(...problemErrors(problems, locate));
  for (const p of problems) blame(p.path);

  // Each stage: one variant per own-matrix combination, ${matrix.x} substituted.
  const stagesData = isObject(resolved.stages) ? resolved.stages : {};
  const variantData = new Map<string, { binding: Record<string, MatrixValue>; stage: unknown; subs: Substitution[] }[]>();
  for (const [id, stage] of Object.entries(stagesData)) {
    const matrix = isObject(stage) ? stage.matrix : undefined;
    const stagePath = ['stages', id];
    if (matrix !== undefined && !validMatrix(matrix)) {
      // The schema reports the malformed matrix; leave ${matrix.x} alone meanwhile.
      variantData.set(id, [{ binding: {}, stage, subs: [] }]);
      continue;
    }
    const entries: [string, MatrixValue[]][] = matrix ? Object.entries(matrix) : [];
    const list: { binding: Record<string, MatrixValue>; stage: unknown; subs: Substitution[] }[] = [];
    const stageProblems: InterpolationProblem[] = [];
    for (const binding of matrixCombos(entries)) {
      const subs: Substitution[] = [];
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(isObject(stage) ? stage : {})) {
        out[k] = k === 'matrix' ? v : interpolate(v, [...stagePath, k], {
          values: matrix ? { vars, matrix: binding } : { vars },
          unavailable: { matrix: `stage "${id}" has no matrix:` },
        }, stageProblems, subs);
      }
      list.push({ binding, stage: isObject(stage) ? out : stage, subs });
    }
    errors.push(...dedupeAndSort(problemErrors(stageProblems, locate)));
    if (stageProblems.length > 0) invalid.add(id);
    variantData.set(id, list);
  }

  // Schema: the whole recipe with each stage's first variant, then the other variants stage by stage.
  const matrixLocate = (subs: Substitution[], binding: Record<string, MatrixValue>, matrix: unknown): Locator => (path, at) => {
    const sub = subs.find((s) => s.namespace === 'matrix' && s.path.length <= path.length && s.path.every((seg, i) => seg === path[i]));
    if (sub && isObject(matrix) && Array.isArray(matrix[sub.name])) {
      const idx = (matrix[sub.name] as unknown[]).indexOf(binding[sub.name]);
      return locate([...sub.path.slice(0, 2), 'matrix', sub.name, idx], 'value');
    }
    return locate(path, at);
  };
  const firstStages: Record<string, unknown> = {};
  for (const [id, list] of variantData) firstStages[id] = list[0]!.stage;
  const whole = { ...resolved, ...(isObject(resolved.stages) ? { stages: firstStages } : {}) };
  const validateRecipe = recipeValidator();
  if (!validateRecipe(whole)) {
    for (const e of validateRecipe.errors ?? []) {
      const path = e.instancePath === '' ? [] : e.instancePath.split('/').slice(1).map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'));
      blame(path, e.keyword, e.params.missingProperty);
    }
    errors.push(...schemaErrors(validateRecipe.errors ?? [], [], (path, at) => {
      if (path[0] === 'stages' && typeof path[1] === 'string' && variantData.has(path[1])) {
        const v = variantData.get(path[1])!;
        return matrixLocate(v[0]!.subs, v[0]!.binding, (stagesData[path[1]] as Record<string, unknown> | undefined)?.matrix)(path, at);
      }
      return locate(path, at);
    }));
  }
  const validateStage = stageValidator();
  for (const [id, list] of variantData) {
    for (const variant of list.slice(1)) {
      if (!validateStage(variant.stage)) {
        invalid.add(id);
        errors.push(...schemaErrors(validateStage.errors ?? [], ['stages', id],
          matrixLocate(variant.subs, variant.binding, (stagesData[id] as Record<string, unknown>).matrix)));
      }
    }
  }
  if (!isObject(resolved.stages)) fatal = true;
  if (fatal) return { errors: dedupeAndSort(withoutEchoes(errors)) };

  // Fill defaults, build the templates of the stages without errors.
  const schema = recipeSchema();
  const recipe = withDefaults(schema, resolved) as Recipe;
  const stageSchema = (schema.$defs as Record<string, Record<string, unknown>>).stage!;
  const stages: StageTemplate[] = [];
  const invalidStages: InvalidStage[] = [];
  for (const [id, list] of variantData) {
    const raw = stagesData[id] as Record<string, unknown>;
    if (invalid.has(id)) {
      invalidStages.push({ id, ...(isObject(raw) && typeof raw.kind === 'string' ? { kind: raw.kind } : {}), entry: list[0]!.stage });
      continue;
    }
    const matrix: [string, MatrixValue[]][] = raw.matrix ? Object.entries(raw.matrix as Record<string, MatrixValue[]>) : [];
    stages.push({
      id,
      kind: String(raw.kind),
      matrix,
      variants: list.map((v) => {
        const { matrix: _m, ...rest } = withDefaults(stageSchema, v.stage) as Record<string, unknown>;
        return {
          binding: v.binding,
          params: rest as unknown as Stage,
          matrixSources: v.subs.filter((s) => s.namespace === 'matrix').map((s) => ({
            path: s.path.slice(2),
            source: ['stages', id, 'matrix', s.name, matrix.find(([n]) => n === s.name)![1].indexOf(v.binding[s.name]!)],
          })),
        };
      }),
    });
  }
  for (const { stageId, error } of fieldRuleErrors(stages, locate)) {
    errors.push(error);
    const stage = stages.find((t) => t.id === stageId);
    if (stage) { stages.splice(stages.indexOf(stage), 1); invalidStages.push({ id: stage.id, kind: stage.kind, entry: stage.variants[0]!.params }); }
  }
  const result: ResolvedRecipe = { file, path: absPath, dir: dirname(absPath), source, overrides, recipe, stages, locate, invalidStages };
  return { resolved: result, errors: dedupeAndSort(withoutEchoes(errors)) };
}

/** Reads a recipe file; LP1014 when it cannot be read. */
export async function readRecipeFile(file: string): Promise<string> {
  try {
    return await readFile(resolvePath(file), 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new LopperErrors([new LopperError('LP1014', code === 'ENOENT' ? `recipe ${file} does not exist` : `cannot read recipe ${file} (${code ?? String(cause)})`, {
      location: { file }, cause,
    })]);
  }
}

/** Reads and resolves a recipe file. Throws LopperErrors. */
export async function loadRecipe(file: string, options: LoadOptions = {}): Promise<ResolvedRecipe> {
  return resolveRecipeText(await readRecipeFile(file), file, resolvePath(file), options);
}
