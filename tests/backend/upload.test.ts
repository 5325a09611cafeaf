// DeviceUploader (src/backend/upload.ts): bytes land in the tensor unchanged through slots smaller than the tensor
// (reused many times), ragged tails are zero-padded, and a whole bf16/float32 checkpoint loaded onto WebGPU through
// it equals the host's float32 weights bit for bit.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { DeviceUploader } from '../../src/backend/upload.js';
import { loadResident } from '../../src/model/device-load.js';
import { readHfWeights } from '../../src/model/hf.js';
import { initWeights, saveModel, type LlamaConfig } from '../../src/model/index.js';
import { mulberry32 } from '../../src/seeded-random.js';
import { webGpuSession } from './webgpu-session.js';

const session = webGpuSession('float32');

describe('DeviceUploader on WebGPU', () => {
  it('copies bytes through small reused slots, zero-padding a ragged tail', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const rand = mulberry32(5);
    const uploader = new DeviceUploader(64, 2);
    try {
      for (const bytes of [4, 64, 65, 130, 1000, 4099]) {
        const data = Uint8Array.from({ length: bytes }, () => Math.floor(rand() * 256));
        const words = Math.ceil(bytes / 4);
        const tensor = await uploader.tensor(data, [words], 'int32');
        const got = new Uint8Array(((await tensor.data()) as Int32Array).buffer.slice(0));
        tensor.dispose();
        const want = new Uint8Array(words * 4);
        want.set(data);
        assert.deepEqual(got, want, `${bytes} bytes`);
      }
      await assert.rejects(uploader.tensor(new Uint8Array(12), [2], 'int32'), /do not fill/);
    } finally {
      await uploader.close();
    }
  });

  it('loads a bf16 and a float32 checkpoint equal to the host weights', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const config: LlamaConfig = {
      hiddenSize: 18, vocabSize: 70, headDim: 6, numHiddenLayers: 2,
      layers: [0, 1].map(() => ({ numAttentionHeads: 3, numKeyValueHeads: 1, intermediateSize: 27 })),
      rmsNormEps: 1e-5, ropeTheta: 10000, maxPositionEmbeddings: 32, tieWordEmbeddings: false,
      attentionBias: false, mlpBias: false, bosTokenId: 1, eosTokenId: 2,
    };
    const root = await mkdtemp(join(tmpdir(), 'lopper-upload-'));
    try {
      for (const dtype of ['bfloat16', 'float32'] as const) {
        const dir = join(root, dtype);
        await saveModel(dir, { config, weights: initWeights(config, 9), tokenizer: null }, { dtype });
        const host = await readHfWeights(dir, config);
        await tf.setBackend('webgpu');
        const resident = await loadResident(dir, {});
        try {
          for (const [name, want] of host) {
            const got = (await resident.model.params.get(name)!.data()) as Float32Array;
            assert.deepEqual(Array.from(got), Array.from(want.data), `${dtype} ${name}`);
          }
        } finally {
          resident.model.dispose();
        }
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
