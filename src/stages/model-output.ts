// Model-producing stages (prune, lora-finetune, train) end the same way: pick the output dtype (the recipe's
// `dtype:`, else the source checkpoint's), write model/ in it, and hand the device copy to the residency under the
// stage's output key, rounded to what was written, so downstream stages computing on it see exactly the bytes on
// disk (a run that starts mid-DAG and reads the file gets the same numbers).
import { rename } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import type { HfDtype } from '../model/dtype.js';
import { saveDeviceModel } from '../model/device-save.js';
import { sharedResidency, type ModelLease, type ResidentFields } from '../model/residency.js';
import type { StageContext } from './types.js';

const DTYPES: readonly HfDtype[] = ['float32', 'float16', 'bfloat16'];

/** The dtype a model-producing stage writes: its `dtype:` parameter, else `source`. */
export function outputDtype(ctx: StageContext, source: HfDtype): HfDtype {
  const d = ctx.params.dtype;
  if (d === undefined) return source;
  if (typeof d !== 'string' || !DTYPES.includes(d as HfDtype)) {
    throw new LopperError('LP4009', `stage "${ctx.id}": \`dtype\` must be one of ${DTYPES.join(', ')}, got ${JSON.stringify(d)}`);
  }
  return d as HfDtype;
}

/**
 * Writes `fields.model` to `dir` in `fields.dtype` (through a temp dir renamed into place) and makes it resident
 * under the stage's output key. Returns the lease the caller releases, or null when the context has no output key
 * (the model is then disposed). The model is owned by this call from here on, also when it fails.
 */
export async function saveResidentModel(ctx: StageContext, fields: ResidentFields, dir: string): Promise<ModelLease | null> {
  const tmp = `${dir}.tmp-${process.pid}`;
  try {
    await saveDeviceModel(tmp, fields, { signal: ctx.signal });
    await rename(tmp, dir);
  } catch (e) {
    fields.model.dispose();
    throw e;
  }
  if (ctx.outputModelKey === undefined) {
    fields.model.dispose();
    return null;
  }
  return (ctx.residency ?? sharedResidency()).adopt(ctx.outputModelKey, { ...fields, source: dir });
}
