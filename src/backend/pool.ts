// The GPU memory budget's one knob for loops: between batches, idle pooled buffers beyond a bound are freed
// (webgpu.ts boundBufferPool); on other backends this does nothing.
import * as tf from '@tensorflow/tfjs-core';

const GIB = 1024 ** 3;
/** Idle pooled bytes tolerated (LOPPER_GPU_POOL_GB, default 4 GiB). */
function maxIdleBytes(): number {
  const env = Number(process.env.LOPPER_GPU_POOL_GB);
  return Number.isFinite(env) && env >= 0 && process.env.LOPPER_GPU_POOL_GB !== '' && process.env.LOPPER_GPU_POOL_GB !== undefined ? env * GIB : 4 * GIB;
}

export async function boundGpuPool(): Promise<void> {
  if (tf.getBackend() !== 'webgpu') return;
  const spec = './webgpu.js';
  const gpu = (await import(spec)) as { boundBufferPool(max: number): Promise<number> };
  await gpu.boundBufferPool(maxIdleBytes());
}
