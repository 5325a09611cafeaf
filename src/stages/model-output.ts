// Model-producing stages (prune, lora-finetune, train) end the same way: pick the output dtype (the recipe's
// `dtype:`, else the source checkpoint's), hand the device copy to the residency under the stage's output key,
// rounded to that dtype, and write model/ in it, so downstream stages computing on the resident copy see exactly the
// bytes on disk (a run that starts mid-DAG and reads the file gets the same numbers).
import { rename } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import type { HfDtype } from '../model/dtype.js';
import { roundDeviceModel, saveDeviceModel } from '../model/device-save.js';
import { sharedResidency, type ResidentFields } from '../model/residency.js';
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
 * Makes `fields.model` resident under the stage's output key, rounded to `fields.dtype` on the device, and starts
 * writing it to `dir` (through a temp dir renamed into place). Returns the write in flight: the stage hands it to the
 * executor as its `pending` work, so downstream stages that compute on the resident copy run while the disk is
 * busy (the stage's output is committed when the write ends). The resident copy is leased until then, so it cannot
 * be evicted mid-write. The model is owned by this call from here on, also when it fails.
 */
export function writeResidentModel(ctx: StageContext, fields: ResidentFields, dir: string): Promise<void> {
  try {
    roundDeviceModel(fields);
  } catch (e) {
    fields.model.dispose();
    throw e;
  }
  const lease = ctx.outputModelKey === undefined ? null : (ctx.residency ?? sharedResidency()).adopt(ctx.outputModelKey, { ...fields, source: dir });
  const tmp = `${dir}.tmp-${process.pid}`;
  const written = (async () => {
    try {
      await saveDeviceModel(tmp, lease?.resident ?? fields, { signal: ctx.signal, rounded: true });
      await rename(tmp, dir);
    } finally {
      if (lease) lease.release();
      else fields.model.dispose();
    }
  })();
  // Awaited by the executor; a run that is torn down first must not see an unhandled rejection.
  written.catch(() => undefined);
  return written;
}
