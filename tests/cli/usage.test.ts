// Where time and GPU memory went, as a user reads it after `lopper run` (built CLI) on WebGPU (lavapipe here): the run
// record names each stage's GPU peaks and compiled shaders, and metrics.json the seconds and GPU peaks of every
// perplexity dataset, zero-shot task and model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MODEL, TINYSTORIES, missingShared } from '../prune/stories260k-helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli/main.js');
const ARC = join(root, '../shared/data/zeroshot/ARC-Easy.jsonl');

test('lopper run on WebGPU records GPU peaks per stage and seconds per evaluation phase', async (t) => {
  const missing = missingShared();
  if (missing) return t.skip(`missing ${missing}`);
  if (!existsSync(cli)) return t.skip('missing dist/cli/main.js (run npx tsc -p .)');
  if (!existsSync(ARC)) return t.skip(`missing ${ARC}`);
  const dir = mkdtempSync(join(tmpdir(), 'lopper-usage-'));
  const recipe = join(dir, 'r.yaml');
  writeFileSync(recipe, `version: 1
name: usage
runtime: { backend: webgpu }
models:
  base: { path: ${JSON.stringify(MODEL)} }
datasets:
  stories: { path: ${JSON.stringify(TINYSTORIES)}, format: text }
  arc: { path: ${JSON.stringify(ARC)}, format: multiple-choice, template: arc_easy }
stages:
  report: { kind: evaluate, models: [base], perplexity: { datasets: [stories], seq_len: 64, limit: 4 }, zero_shot: { tasks: [{ dataset: arc, limit: 4 }] }, speed: { iterations: 1 } }
`);
  const r = spawnSync(process.execPath, [cli, 'run', recipe, '--json'], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0 && /no WebGPU adapter/.test(r.stderr)) return t.skip('no WebGPU adapter on this machine');
  assert.equal(r.status, 0, r.stderr);
  const out = (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { stages: Record<string, { output: string }> }).stages.report!.output;

  const runs = join(dir, '.lopper', 'runs');
  const record = JSON.parse(readFileSync(join(runs, readdirSync(runs).find((f) => f.endsWith('.json'))!), 'utf8')) as {
    stages: Record<string, { gpu?: { peakInUseBytes: number; peakPooledBytes: number; pipelinesCompiled: number } }>;
  };
  const gpu = record.stages.report!.gpu!;
  assert.ok(gpu.peakInUseBytes > 4 * 260_000, `the model's float32 weights at least (${gpu.peakInUseBytes} bytes)`);
  assert.ok(gpu.peakPooledBytes >= gpu.peakInUseBytes);
  assert.ok(gpu.pipelinesCompiled > 0, 'a first run compiles shaders');

  const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { models: { base: { details: Record<string, any> } } };
  const details = metrics.models.base.details;
  for (const phase of [details.perplexity.stories, details.zero_shot.arc, details.usage]) {
    assert.equal(typeof phase.seconds, 'number');
    assert.ok(phase.seconds > 0);
    assert.ok(phase.gpu_peak_in_use_bytes > 0 && phase.gpu_peak_pooled_bytes >= phase.gpu_peak_in_use_bytes);
    assert.equal(typeof phase.pipelines_compiled, 'number');
  }
  assert.ok(details.usage.seconds >= details.perplexity.stories.seconds + details.zero_shot.arc.seconds);
});
