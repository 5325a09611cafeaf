// The programmatic API over a recipe file: validate (never throws for user errors), plan (throws LopperErrors).
import { LopperError, LopperErrors } from '../errors/lopper-error.js';
import { resolve } from 'node:path';
import { loadRecipe, readRecipeFile, resolveRecipeParts, resolveRecipeText } from '../dsl/resolve.js';
import { dedupeAndSort } from '../dsl/schema-errors.js';
import type { LoadOptions, ResolvedRecipe } from '../dsl/resolve.js';
import { checkRecipe, planChecked } from './plan.js';
import type { CheckedRecipe, PlanOptions } from './plan.js';
import type { Plan } from './types.js';

export interface ValidationResult {
  file: string;
  ok: boolean;
  errors: LopperError[];
  /** Missing files and other problems that do not make the recipe invalid. */
  warnings: LopperError[];
  /** Stage instances after matrix expansion (0 when invalid). */
  stageCount: number;
}

function userErrors(e: unknown): LopperError[] | undefined {
  if (e instanceof LopperErrors) return e.errors;
  if (e instanceof LopperError) return [e];
  return undefined;
}

/** Parses, validates and checks a recipe, reporting every problem at once; missing model/dataset files are warnings. */
export async function validate(file: string, options: LoadOptions = {}): Promise<ValidationResult> {
  let text: string;
  try {
    text = await readRecipeFile(file);
  } catch (e) {
    const errors = userErrors(e);
    if (!errors) throw e;
    return { file, ok: false, errors, warnings: [], stageCount: 0 };
  }
  const parts = resolveRecipeParts(text, file, resolve(file), options);
  if (!parts.resolved) return { file, ok: false, errors: parts.errors, warnings: [], stageCount: 0 };
  try {
    const checked = checkRecipe(parts.resolved, { missingFiles: 'warning' });
    const ok = parts.errors.length === 0;
    return { file, ok, errors: parts.errors, warnings: checked.warnings, stageCount: ok ? checked.instances.length : 0 };
  } catch (e) {
    const errors = userErrors(e);
    if (!errors) throw e;
    return { file, ok: false, errors: dedupeAndSort([...parts.errors, ...errors]), warnings: [], stageCount: 0 };
  }
}

/** Checks a recipe for plan/run: missing files are errors. Throws LopperErrors. */
export async function checkRecipeFile(file: string, options: LoadOptions = {}): Promise<CheckedRecipe> {
  return checkRecipe(await loadRecipe(file, options), { missingFiles: 'error' });
}

export interface PlanFileOptions extends LoadOptions, PlanOptions {}

/** Recipe file (or an already resolved recipe) → Plan with cache keys. Throws LopperErrors for user errors. */
export async function plan(recipe: string | ResolvedRecipe, options: PlanFileOptions = {}): Promise<Plan> {
  const resolved = typeof recipe === 'string' ? await loadRecipe(recipe, options) : recipe;
  const checked = checkRecipe(resolved, { missingFiles: options.missingFiles ?? 'error' });
  return planChecked(checked, options);
}

/** Plans recipe text (tests, editors): `file` is the name printed in diagnostics and the base of relative paths. */
export async function planText(text: string, file: string, options: PlanFileOptions = {}): Promise<Plan> {
  return plan(resolveRecipeText(text, file, undefined, options), options);
}
