// Loading a model a stage names: through ctx.model, so the `models:` entry's `tokenizer:` and `format:` reach
// the loader (a llama2.c .bin whose tokenizer lives in another directory, a file whose extension hides its format).
import { loadModel } from '../model/index.js';
import type { LoadedModel } from '../model/types.js';
import type { ModelRef, StageContext } from './types.js';

/** The loader options of a model reference. */
export function loadOptions(ref: ModelRef): { tokenizer?: string; format?: ModelRef['format'] } {
  return { ...(ref.tokenizer !== undefined ? { tokenizer: ref.tokenizer } : {}), ...(ref.format !== undefined ? { format: ref.format } : {}) };
}

/** Loads the model `ref` names (a `models:` entry or an upstream model-producing stage). */
export function loadModelRef(ctx: StageContext, ref: string): Promise<LoadedModel> {
  const m = ctx.model(ref);
  return loadModel(m.path, loadOptions(m));
}
