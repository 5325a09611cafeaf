// The dtypes lopper reads model weights in and writes them back as (DESIGN.md: outputs keep the source dtype).
import type { HfDtype } from './dtype.js';

export type CheckpointDtype = HfDtype;

/** The 16-bit kind of a dtype for the pack/unpack kernels, or null for float32. */
export function halfKindOf(dtype: CheckpointDtype): 'bf16' | 'f16' | null {
  return dtype === 'bfloat16' ? 'bf16' : dtype === 'float16' ? 'f16' : null;
}
