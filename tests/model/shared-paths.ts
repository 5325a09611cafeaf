// Paths of the shared stories260K model copies and fixtures used by the model tests, and small helpers.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backend/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// LOPPER_SHARED points elsewhere when ../shared is not beside the checkout (e.g. on the GPU machine).
export const shared = process.env.LOPPER_SHARED ? resolve(process.env.LOPPER_SHARED) : resolve(root, '../shared');
export const paths = {
  hf: join(shared, 'models/stories260K-hf'),
  llama2c: join(shared, 'models/stories260K-llama2c/stories260K.bin'),
  tok512: join(shared, 'models/stories260K-llama2c/tok512.bin'),
  gguf: join(shared, 'models/stories260K-gguf/stories260K.gguf'),
  fixtures: join(shared, 'fixtures/stories260K/fixtures.safetensors'),
  fixturesJson: join(shared, 'fixtures/stories260K/fixtures.json'),
  tinystories: join(shared, 'data/tinystories/tinystories_val_first.txt'),
};

/** Skips the test (returning false) when a shared path is missing. */
export function haveShared(t: TestContext, ...need: (keyof typeof paths)[]): boolean {
  for (const k of need) {
    if (!existsSync(paths[k])) {
      t.skip(`missing ../shared/${paths[k].slice(shared.length + 1)}`);
      return false;
    }
  }
  return true;
}

export async function useCpu(): Promise<void> {
  if (tf.getBackend() !== 'cpu') await initBackend('cpu');
}

export function ids2d(data: Int32Array | Float32Array, shape: number[]): tf.Tensor2D {
  return tf.tensor2d(Int32Array.from(data), shape as [number, number], 'int32');
}

export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return Math.sqrt(num / (den || 1));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
