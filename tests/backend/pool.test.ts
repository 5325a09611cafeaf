// The bounded buffer pool and the GPU meter on WebGPU: a loop of one shape keeps its pooled buffers however large,
// sizes nothing used since the previous bound are freed, and a meter sees the peak inside a computation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { boundBufferPool, openGpuMeter } from '../../src/backend/webgpu.js';
import { webGpuSession } from './webgpu-session.js';

const session = webGpuSession('float32');
const allocated = () => (tf.memory() as { numBytesAllocatedInGPU: number }).numBytesAllocatedInGPU;

/** Runs a small computation whose buffers return to the pool: one [n] float32 output after two temporaries. */
async function step(n: number): Promise<void> {
  const y = tf.tidy(() => tf.add(tf.mul(tf.fill([n], 2), 3), 1));
  await y.data();
  y.dispose();
}

describe('bounded GPU buffer pool (WebGPU)', () => {
  it('keeps the buffers the last batch used and frees the sizes nothing used since the previous bound', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    await boundBufferPool(0);
    await boundBufferPool(0); // whatever earlier work pooled is now unused since the previous call: freed
    await step(1 << 20);
    const afterFirst = allocated();
    assert.equal(await boundBufferPool(0), 0, 'buffers used since the previous bound stay pooled');
    for (let i = 0; i < 3; i++) {
      await step(1 << 20);
      assert.equal(await boundBufferPool(0), 0, 'a steady loop keeps its working set');
    }
    assert.equal(allocated(), afterFirst, 'a steady loop allocates nothing new');
    await step(3 << 19); // another size: the batch since the previous bound did not use the 4 MiB buffers
    const released = await boundBufferPool(0);
    assert.ok(released >= 3 * 4 * (1 << 20), `released ${released} bytes`);
    const before = allocated();
    const releasedLater = await boundBufferPool(0);
    assert.ok(releasedLater >= 4 * (3 << 19), `the next bound frees the 6 MiB buffers, unused since (released ${releasedLater})`);
    assert.equal(allocated(), before - releasedLater);
  });

  it('a meter records the peak bytes inside a computation, not only at its end', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    await boundBufferPool(0);
    await boundBufferPool(0);
    const meter = openGpuMeter()!;
    await step(1 << 22);
    const usage = meter.stop();
    // Three [4 Mi] float32 tensors are alive at once inside the tidy (fill, mul, add): 48 MiB.
    assert.ok(usage.peakInUseBytes >= 3 * 4 * (1 << 22), `peak in use ${usage.peakInUseBytes}`);
    assert.ok(usage.peakPooledBytes >= usage.peakInUseBytes);
  });
});
