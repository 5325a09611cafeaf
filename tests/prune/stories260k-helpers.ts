// Shared setup of the stories260K pruning tests: paths into ../shared, the fixture tensors, and a reference
// source (weights + fixture gradients) for tests/prune/reference-f64.ts.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, type SafetensorsTensor } from '../../src/model/safetensors.js';
import type { Mat } from './reference-f64.js';

export const SHARED = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../shared');
export const MODEL = join(SHARED, 'models/stories260K-hf');
export const FIXTURES = join(SHARED, 'fixtures/stories260K/fixtures.safetensors');
export const TINYSTORIES = join(SHARED, 'data/tinystories/tinystories_val_first.txt');

/** The first ../shared path a test needs that is missing, or null. */
export function missingShared(): string | null {
  for (const p of [MODEL, FIXTURES, TINYSTORIES]) if (!existsSync(p)) return p;
  return null;
}

export const calibDataset = { calib: { name: 'calib', path: TINYSTORIES, format: 'text' as const, options: {} } };

export function mat(t: SafetensorsTensor | { shape: number[]; data: ArrayLike<number> }): Mat {
  return { rows: t.shape[0]!, cols: t.shape.length > 1 ? t.shape[1]! : 1, data: t.data };
}

export async function loadReferenceInputs(): Promise<{ weights: Map<string, SafetensorsTensor>; fixture: Map<string, SafetensorsTensor> }> {
  return { weights: await readSafetensors(join(MODEL, 'model.safetensors')), fixture: await readSafetensors(FIXTURES) };
}

export function readJson<T = any>(path: string): T { // eslint-disable-line @typescript-eslint/no-explicit-any
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

export const PRUNED_LAYERS = [1, 2, 3];
