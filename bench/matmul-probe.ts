// GEMM micro-benchmark of the tensor-core kernel's variants on the LLaMA-7B shapes that dominate the forward and
// backward passes, against tfjs's float32 kernel. Each (shape, variant) is timed over many dispatches between two
// queue drains (no readback inside the timed region), after a warm-up that also compiles the pipeline.
//
//   node --import tsx bench/matmul-probe.ts [--reps 20] [--out probe.json] [--quick]
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
import { assertNoDeviceError, deviceErrors, webGpuDevice, webGpuInfo } from '../src/backend/webgpu.js';
import {
  float32MatMulTensors, knobsFromEnv, relativeError, setTensorCoreOptions, tensorCoreMatMulTensors, type TensorCoreOptions,
} from '../src/backend/kernels/register.js';
import { deviceUniform } from './device-model.js';

/** `gradient`: the operand that is an incoming gradient in the model (scaled by default, see register.ts). */
interface Shape { label: string; M: number; N: number; K: number; ta: boolean; tb: boolean; batch?: number; gradient?: 'a' | 'b' }

const SHAPES: Shape[] = [
  { label: 'q/o proj fwd, 512 tok', M: 512, N: 4096, K: 4096, ta: false, tb: true },
  { label: 'gate/up fwd, 512 tok', M: 512, N: 11008, K: 4096, ta: false, tb: true },
  { label: 'down fwd, 512 tok', M: 512, N: 4096, K: 11008, ta: false, tb: true },
  { label: 'down dX, 640 tok', M: 640, N: 11008, K: 4096, ta: false, tb: false, gradient: 'a' },
  { label: 'gate dW, 640 tok', M: 11008, N: 4096, K: 640, ta: true, tb: false, gradient: 'b' },
  { label: 'LoRA x·Aᵀ, 1024 tok', M: 1024, N: 8, K: 4096, ta: false, tb: true },
  { label: 'LoRA dA, 1024 tok', M: 8, N: 4096, K: 1024, ta: true, tb: false, gradient: 'a' },
  { label: 'LM head fwd, 512 tok', M: 512, N: 32000, K: 4096, ta: false, tb: true },
  { label: 'attn scores, 128 heads', M: 128, N: 128, K: 128, ta: false, tb: true, batch: 128 },
  { label: '4096³', M: 4096, N: 4096, K: 4096, ta: false, tb: false },
];

type Knobs = Partial<TensorCoreOptions> & { scaleBoth?: boolean; scaleNone?: boolean };
const VARIANTS: Array<[string, Knobs]> = [
  ['default', {}],
  ['no-prefetch', { prefetch: false }],
  ['k32', { tileK: 32 }],
  ['k32-no-prefetch', { tileK: 32, prefetch: false }],
  ['2x4', { subgroupLayout: '2x4' }],
  ['no-aligned', { alignedKernels: false }],
  ['unscaled', { scaleNone: true }],
  ['both-scaled', { scaleBoth: true }],
];

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function drain(): Promise<void> {
  const backend = tf.backend() as unknown as { submitQueue(): void; endComputePassEncoder(): void; ensureCommandEncoderReady(): void };
  backend.ensureCommandEncoderReady();
  backend.endComputePassEncoder();
  backend.submitQueue();
  await webGpuDevice().queue.onSubmittedWorkDone();
}

/**
 * Seconds per call: after a warm-up (pipeline compile), enough calls to fill ~150 ms of GPU time, twice, best of two
 * (clocks and other tenants make single short samples noisy).
 */
async function timeOne(f: () => tf.Tensor | null, minReps: number): Promise<number | null> {
  for (let w = 0; w < 2; w++) {
    const t = f();
    if (!t) return null;
    t.dispose();
  }
  await drain();
  const sample = async (n: number): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) f()!.dispose();
    await drain();
    return (performance.now() - t0) / 1000 / n;
  };
  const estimate = await sample(3);
  const reps = Math.max(minReps, Math.min(2000, Math.ceil(0.15 / estimate)));
  return Math.min(await sample(reps), await sample(reps));
}

async function main(): Promise<void> {
  const reps = Number(argValue('--reps') ?? 10);
  const out = argValue('--out');
  const quick = process.argv.includes('--quick');
  const info = await initBackend('webgpu', { precision: 'mixed' });
  const gpu = webGpuInfo();
  const record: Record<string, unknown> = {
    started: new Date().toISOString(), adapter: info.adapter, dawnToggles: gpu?.dawnToggles, mixed: gpu?.mixed?.reason, reps, rows: [],
  };
  const rows = record.rows as Record<string, unknown>[];
  if (!gpu?.mixed?.tensorCores) {
    console.error(`tensor cores are not in use on ${info.adapter}: ${gpu?.mixed?.reason ?? gpu?.notes.join('; ')}`);
    process.exit(1);
  }
  const defaults = knobsFromEnv();
  try {
    // Bring the GPU to its working clocks before the first sample.
    {
      const a = deviceUniform([4096, 4096], 3, 1);
      const t0 = performance.now();
      while (performance.now() - t0 < 1500) {
        for (let i = 0; i < 20; i++) tensorCoreMatMulTensors(a, a)!.dispose();
        await drain();
      }
      a.dispose();
    }
    for (const s of quick ? SHAPES.slice(0, 3) : SHAPES) {
      const batch = s.batch ?? 1;
      const aShape = s.ta ? [s.K, s.M] : [s.M, s.K];
      const bShape = s.tb ? [s.N, s.K] : [s.K, s.N];
      const a2 = deviceUniform([aShape[0]! * batch, aShape[1]!], 1, 1);
      const b2 = deviceUniform([bShape[0]! * batch, bShape[1]!], 2, 1);
      const a = batch > 1 ? tf.reshape(a2, [batch, ...aShape]) : a2;
      // B plays the weight (a variable: its max |x| is cached as in the model) unless it is the gradient.
      const b = batch > 1 ? tf.reshape(b2, [batch, ...bShape]) : s.gradient === 'b' ? b2 : tf.variable(b2, false);
      const flop = 2 * s.M * s.N * s.K * batch;
      const row: Record<string, unknown> = { ...s };
      const f32 = await timeOne(() => float32MatMulTensors(a, b, s.ta, s.tb), Math.max(3, Math.floor(reps / 4)));
      row.float32_tflops = f32 ? Number((flop / f32 / 1e12).toFixed(1)) : null;
      const want = float32MatMulTensors(a, b, s.ta, s.tb);
      const wantData = (await want.data()) as Float32Array;
      want.dispose();
      for (const [name, knobs] of quick ? VARIANTS.slice(0, 3) : VARIANTS) {
        const { scaleBoth: _b, scaleNone: _n, ...options } = knobs;
        setTensorCoreOptions({ ...defaults, ...options });
        try {
          const scale = knobs.scaleBoth ? { a: true, b: true } : knobs.scaleNone ? { a: false, b: false }
            : { a: s.gradient === 'a', b: s.gradient === 'b' };
          const sec = await timeOne(() => tensorCoreMatMulTensors(a, b, s.ta, s.tb, scale), reps);
          await assertNoDeviceError(`probe ${name}`);
          const got = tensorCoreMatMulTensors(a, b, s.ta, s.tb, scale)!;
          const err = relativeError((await got.data()) as Float32Array, wantData);
          got.dispose();
          row[name] = sec === null ? null : { tflops: Number((flop / sec / 1e12).toFixed(1)), ms: Number((sec * 1e3).toFixed(3)), relError: Number(err.toExponential(2)) };
        } catch (e) {
          row[name] = { error: (e as Error).message.slice(0, 400) };
          console.log(`${s.label} ${name}: ${(e as Error).message.slice(0, 400)}`);
          break; // device errors are sticky: the remaining numbers would be refused anyway
        }
      }
      setTensorCoreOptions(defaults);
      tf.dispose([a2, b2, a, b]);
      console.log('probe', JSON.stringify(row));
      rows.push(row);
      if (out) writeFileSync(out, JSON.stringify(record, null, 2) + '\n');
      if (deviceErrors().length > 0) break;
    }
  } finally {
    record.deviceErrors = deviceErrors().map((e) => ({ ...e }));
    if (out) writeFileSync(out, JSON.stringify(record, null, 2) + '\n');
  }
  process.exit();
}

await main();
