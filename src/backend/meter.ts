// Where time and GPU memory went: a meter opened around a phase (a stage, one perplexity dataset, one zero-shot
// task) reports its seconds and, on WebGPU, the peak bytes in use and pooled and the shaders it compiled. Stages
// write these into their outputs (metrics.json, the stage record) so that users and benchmarks can read them.
import * as tf from '@tensorflow/tfjs-core';
import type { GpuUsage } from './webgpu.js';

export type { GpuUsage } from './webgpu.js';

export interface PhaseUsage {
  seconds: number;
  gpu?: GpuUsage;
}

export interface Meter {
  stop(): PhaseUsage;
}

export async function openMeter(): Promise<Meter> {
  const started = performance.now();
  let gpu: { stop(): GpuUsage } | null = null;
  if (tf.getBackend() === 'webgpu') {
    const spec = './webgpu.js';
    gpu = ((await import(spec)) as { openGpuMeter(): { stop(): GpuUsage } | null }).openGpuMeter();
  }
  return {
    stop() {
      const usage: PhaseUsage = { seconds: (performance.now() - started) / 1000 };
      if (gpu) usage.gpu = gpu.stop();
      return usage;
    },
  };
}

/** Runs `body` under a meter; returns its value and the phase's usage. */
export async function metered<T>(body: () => Promise<T>): Promise<{ value: T; usage: PhaseUsage }> {
  const meter = await openMeter();
  let usage: PhaseUsage | undefined;
  try {
    const value = await body();
    usage = meter.stop();
    return { value, usage };
  } finally {
    if (!usage) meter.stop();
  }
}

/** The usage as metrics.json writes it (snake_case, rounded). */
export function usageJson(usage: PhaseUsage): Record<string, number> {
  const out: Record<string, number> = { seconds: Math.round(usage.seconds * 1000) / 1000 };
  if (usage.gpu) {
    out.gpu_peak_in_use_bytes = usage.gpu.peakInUseBytes;
    out.gpu_peak_pooled_bytes = usage.gpu.peakPooledBytes;
    out.pipelines_compiled = usage.gpu.pipelinesCompiled;
  }
  return out;
}
