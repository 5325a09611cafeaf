import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diffKeyInputs } from '../../src/run/explain.js';

// The planner's key-input layout (src/plan/keys.ts KeyInputs).
const before = {
  kind: 'prune', version: '1', params: { ratio: 0.25, scope: 'local', importance: 'importance' },
  inputs: { importance: 'a'.repeat(64) },
  models: { base: { format: 'hf', files: { 'model.safetensors': '1'.repeat(64), 'config.json': '2'.repeat(64) } } },
  datasets: { calib: { format: 'text', options: {}, sha256: '3'.repeat(64) } },
  seed: 42, numerics: { backend: 'cpu', precision: 'float32' },
};
const stage = {
  models: { base: '/m/stories260K-hf' },
  datasets: { calib: { name: 'calib', path: '/data/calib.txt', format: 'text' as const, options: {} } },
};

test('diffKeyInputs names params, files, upstream keys and numerics the way explain prints them', () => {
  const after = structuredClone(before);
  after.params.ratio = 0.5;
  after.inputs.importance = 'b'.repeat(64);
  after.models.base.files['model.safetensors'] = '4'.repeat(64);
  after.datasets.calib.sha256 = '5'.repeat(64);
  after.numerics.backend = 'wasm';
  after.seed = 7;
  assert.deepEqual(diffKeyInputs(before, after, stage), [
    'file /data/calib.txt changed',
    'upstream importance key changed',
    'file /m/stories260K-hf/model.safetensors changed',
    'backend cpu -> wasm',
    'params.ratio 0.25 -> 0.5',
    'seed 42 -> 7',
  ]);
  assert.deepEqual(diffKeyInputs(before, structuredClone(before), stage), []);
  const added = structuredClone(before) as typeof before & { params: { round_to?: number } };
  added.params.round_to = 8;
  assert.deepEqual(diffKeyInputs(before, added), ['params.round_to added (8)']);
});
