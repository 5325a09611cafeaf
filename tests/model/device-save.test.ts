// Saving a device-resident model (src/model/device-save.ts over backend/readback.ts): the files equal a host save
// of the same weights byte for byte in bf16 and float32, on the cpu backend and on WebGPU (lavapipe here), with
// the staging window at its default and so small that every tensor is staged on its own; every staging buffer is
// freed after a save, a failed save and a cancelled one.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { liveStagedReads } from '../../src/backend/readback.js';
import { StageCancelled } from '../../src/errors/lopper-error.js';
import { saveDeviceModel } from '../../src/model/device-save.js';
import type { HfDtype } from '../../src/model/dtype.js';
import { LlamaModel, initWeights, saveModel, type LlamaConfig } from '../../src/model/index.js';
import { webGpuSession } from '../backend/webgpu-session.js';

const session = webGpuSession('float32');

// Odd sizes on purpose: a norm of 18 bf16 values is 36 bytes, so tensors end mid-word in the staging buffers.
const config: LlamaConfig = {
  hiddenSize: 18, vocabSize: 70, headDim: 6, numHiddenLayers: 2,
  layers: [0, 1].map(() => ({ numAttentionHeads: 3, numKeyValueHeads: 1, intermediateSize: 26 })),
  rmsNormEps: 1e-5, ropeTheta: 10000, maxPositionEmbeddings: 32, tieWordEmbeddings: false,
  attentionBias: false, mlpBias: false, bosTokenId: 1, eosTokenId: 2,
};

async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) out.set(name, await readFile(join(dir, name)));
  return out;
}

async function withEnv<T>(name: string, value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const before = process.env[name];
  if (value === undefined) delete process.env[name]; else process.env[name] = value;
  try { return await fn(); } finally { if (before === undefined) delete process.env[name]; else process.env[name] = before; }
}

async function compareWithHostSave(dtype: HfDtype, aheadGb: string | undefined): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'lopper-device-save-'));
  try {
    const weights = initWeights(config, 7);
    await saveModel(join(root, 'host'), { config, weights, tokenizer: null }, { dtype });
    const model = LlamaModel.fromWeights(config, weights, { trainable: false });
    try {
      await withEnv('LOPPER_WRITE_AHEAD_GB', aheadGb, () => saveDeviceModel(join(root, 'device'), { config, model, tokenizer: null, dtype }));
    } finally {
      model.dispose();
    }
    assert.equal(liveStagedReads(), 0, 'a staging buffer outlived the save');
    const host = await filesOf(join(root, 'host'));
    const device = await filesOf(join(root, 'device'));
    assert.deepEqual([...device.keys()], [...host.keys()]);
    for (const [name, bytes] of host) assert.ok(device.get(name)!.equals(bytes), `${name} differs from the host save (${dtype})`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

for (const backend of ['cpu', 'webgpu'] as const) {
  describe(`saveDeviceModel on ${backend}`, () => {
    const ready = async (t: { skip(m: string): void }): Promise<boolean> => {
      if (backend === 'webgpu' && !session.info) { t.skip(session.skipReason); return false; }
      await tf.setBackend(backend);
      await tf.ready();
      return true;
    };
    for (const dtype of ['bfloat16', 'float32'] as const) {
      for (const ahead of [undefined, '1e-9']) {
        it(`writes ${dtype} like a host save (staging window ${ahead ?? 'default'})`, async (t) => {
          if (!(await ready(t))) return;
          await compareWithHostSave(dtype, ahead);
        });
      }
    }

    it('frees its staging buffers when cancelled and when the disk refuses a write', async (t) => {
      if (!(await ready(t))) return;
      const root = await mkdtemp(join(tmpdir(), 'lopper-device-save-'));
      const model = LlamaModel.fromWeights(config, initWeights(config, 3), { trainable: false });
      try {
        const cancel = new AbortController();
        cancel.abort();
        await assert.rejects(saveDeviceModel(join(root, 'cancelled'), { config, model, tokenizer: null, dtype: 'bfloat16' }, { signal: cancel.signal }),
          (e: unknown) => e instanceof StageCancelled);
        assert.equal(liveStagedReads(), 0);
        // A directory where the shard file should go: the open fails after the first tensors were staged.
        const blocked = join(root, 'blocked');
        await saveModel(join(blocked, 'model.safetensors'), { config, weights: initWeights(config, 1), tokenizer: null });
        await assert.rejects(saveDeviceModel(blocked, { config, model, tokenizer: null, dtype: 'bfloat16' }), /model\.safetensors/);
        assert.equal(liveStagedReads(), 0);
      } finally {
        model.dispose();
        await rm(root, { recursive: true, force: true });
      }
    });
  });
}
