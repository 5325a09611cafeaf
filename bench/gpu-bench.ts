// The work of the PyTorch table in ../shared/device/README.md, on whatever tfjs backend is present:
//   Taylor score: fwd+bwd of the mean loss on [10, 64] + per-row/col Σ|W·g| of the 7 projections of every layer
//   perplexity forward on [4, 128] and [16, 128] windows
//   LoRA step (r = 8 on the 7 projections, AdamW) on [4, 256]
// for stories260K (real weights) and the LLaMA-7B shape (random weights made on the device), with medians of several
// runs after a warm-up, the GPU memory tfjs held, and the ratio to PyTorch's numbers on the H200.
//
//   node --import tsx bench/gpu-bench.ts --backend webgpu --precision mixed --model llama7b --out result.json
//   options: --backend webgpu|cpu|wasm  --precision float32|mixed  --model stories260k|llama7b  --runs N
//            --stability N (N forward+backward steps on stories260K, memory sampled)  --matmul (GEMM micro-bench)
//            --stories PATH (stories260K HF directory; default ../shared/models/stories260K-hf)
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
import { assertNoDeviceError, deviceErrors, releaseFreeGpuBuffers, webGpuInfo } from '../src/backend/webgpu.js';
import { float32MatMulTensors, tensorCoreMatMulTensors, tensorCoreStats } from '../src/backend/kernels/register.js';
import { fusedOpsActive, setFusedOpsEnabled } from '../src/backend/kernels/fused-ops.js';
import { loadModel } from '../src/model/index.js';
import { LlamaModel } from '../src/model/llama.js';
import { LoraAdapters, LORA_TARGETS } from '../src/lora/adapters.js';
import { AdamW } from '../src/train/adamw.js';
import type { LlamaConfig } from '../src/model/types.js';
import { deviceRandomModel, deviceUniform, llama7bConfig } from './device-model.js';

/** PyTorch on the H200, random LLaMA-7B shape (../shared/device/README.md). Seconds for taylor, tokens/s otherwise. */
export const PYTORCH_H200_LLAMA7B = {
  taylor: { float32: 0.60, bfloat16: 0.106 },
  ppl_4x128: { float32: 3528, bfloat16: 19902 },
  ppl_16x128: { float32: 3493, bfloat16: 33245 },
  lora_4x256: { float32: 1586, bfloat16: 4908 },
} as const;

interface Args {
  backend: 'webgpu' | 'cpu' | 'wasm';
  precision: 'float32' | 'mixed';
  model: 'stories260k' | 'llama7b';
  runs: number;
  out: string | null;
  stability: number;
  matmul: boolean;
  stories: string;
  skip: Set<string>;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    backend: 'webgpu', precision: 'float32', model: 'stories260k', runs: 3, out: null, stability: 0, matmul: false,
    stories: resolve(import.meta.dirname, '../../shared/models/stories260K-hf'), skip: new Set(),
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    switch (k) {
      case '--backend': a.backend = v as Args['backend']; i++; break;
      case '--precision': a.precision = v as Args['precision']; i++; break;
      case '--model': a.model = v as Args['model']; i++; break;
      case '--runs': a.runs = Number(v); i++; break;
      case '--out': a.out = v!; i++; break;
      case '--stability': a.stability = Number(v); i++; break;
      case '--matmul': a.matmul = true; break;
      case '--stories': a.stories = resolve(v!); i++; break;
      case '--skip': for (const s of v!.split(',')) a.skip.add(s); i++; break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  return a;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function memory(): { live: number | null; pooled: number | null; numTensors: number } {
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number; numBytesAllocatedInGPU?: number };
  return { live: m.numBytesInGPU ?? m.numBytes, pooled: m.numBytesAllocatedInGPU ?? null, numTensors: m.numTensors };
}

let peakLive = 0;
function sampleLive(): void {
  const m = memory();
  if (m.live !== null && m.live > peakLive) peakLive = m.live;
}

/** Deterministic token ids in [3, vocab). */
function ids(B: number, T: number, vocab: number, seed: number): tf.Tensor2D {
  const data = new Int32Array(B * T);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = 3 + (s % (vocab - 3));
  }
  return tf.tensor2d(data, [B, T], 'int32');
}

function projectionNames(config: LlamaConfig): string[] {
  const out: string[] = [];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) out.push(`model.layers.${i}.self_attn.${p}.weight`);
    for (const p of ['gate_proj', 'up_proj', 'down_proj']) out.push(`model.layers.${i}.mlp.${p}.weight`);
  }
  return out;
}

interface Timing {
  runs_s: number[];
  median_s: number;
  tokens: number;
  tokens_per_s: number;
  peak_live_bytes: number | null;
  pooled_bytes_after: number | null;
  check: number;
}

async function timed(name: string, runs: number, tokens: number, once: () => Promise<number>): Promise<Timing> {
  peakLive = 0;
  const freed = await releaseFreeGpuBuffers();
  if (freed > 0) console.log(`released ${(freed / 2 ** 30).toFixed(1)} GiB of pooled GPU buffers`);
  let check = await once(); // warm-up: pipelines compiled, buffer pool filled
  await assertNoDeviceError(`bench ${name} (warm-up)`);
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    check = await once();
    times.push((performance.now() - t0) / 1000);
  }
  await assertNoDeviceError(`bench ${name}`);
  const med = median(times);
  const res: Timing = {
    runs_s: times.map((t) => Number(t.toFixed(4))), median_s: Number(med.toFixed(4)), tokens,
    tokens_per_s: Math.round(tokens / med), peak_live_bytes: peakLive || null, pooled_bytes_after: memory().pooled, check,
  };
  console.log(`${name}: median ${med.toFixed(3)} s, ${res.tokens_per_s} tokens/s, runs ${res.runs_s.join(' ')}, check ${check}`);
  return res;
}

async function taylorOnce(model: LlamaModel, input: tf.Tensor2D, names: string[]): Promise<number> {
  const vars = names.map((n) => model.params.get(n)!);
  const { value, grads } = tf.variableGrads(() => model.loss(input), vars);
  sampleLive();
  // One tidy per projection: the [out, in] temporaries go back to the pool before the next one needs them.
  const parts: tf.Tensor[] = [];
  for (const v of vars) {
    parts.push(...tf.tidy(() => {
      const s = tf.abs(tf.mul(v, grads[v.name]!));
      return [tf.sum(s, 1), tf.sum(s, 0)];
    }));
  }
  const sums = tf.concat(parts);
  tf.dispose(parts);
  tf.dispose(grads);
  const d = (await sums.data()) as Float32Array;
  const loss = (await value.data())[0]!;
  tf.dispose([sums, value]);
  if (d.some((x) => !Number.isFinite(x))) throw new Error('Taylor scores are not finite');
  return Number(loss.toFixed(5));
}

async function perplexityOnce(model: LlamaModel, input: tf.Tensor2D): Promise<number> {
  const nll = tf.tidy(() => tf.neg(tf.mean(model.tokenLogProbs(input))));
  sampleLive();
  const v = (await nll.data())[0]!;
  nll.dispose();
  return Number(Math.exp(v).toFixed(4));
}

async function loraOnce(model: LlamaModel, adapters: LoraAdapters, opt: AdamW, input: tf.Tensor2D): Promise<number> {
  const vars = [...adapters.variables.values()];
  const hook = adapters.hook(null);
  const { value, grads } = tf.variableGrads(() => model.loss(input, { linear: hook, training: true }), vars);
  sampleLive();
  const byName = new Map<string, tf.Tensor>();
  for (const [name, v] of adapters.variables) byName.set(name, grads[v.name]!);
  opt.step(byName, 1e-4);
  tf.dispose(grads);
  const loss = (await value.data())[0]!;
  value.dispose();
  return Number(loss.toFixed(5));
}

/** Where a LoRA step's time goes: the forward alone, forward + backward, and the optimizer update alone. */
async function loraParts(model: LlamaModel, adapters: LoraAdapters, opt: AdamW, input: tf.Tensor2D, runs: number): Promise<Record<string, number>> {
  const vars = [...adapters.variables.values()];
  const hook = adapters.hook(null);
  const forward = await timed('LoRA forward [4,256]', runs, 1024, async () => {
    const loss = model.loss(input, { linear: hook, training: true });
    const v = (await loss.data())[0]!;
    loss.dispose();
    return v;
  });
  const backward = await timed('LoRA forward+backward [4,256]', runs, 1024, async () => {
    const { value, grads } = tf.variableGrads(() => model.loss(input, { linear: hook, training: true }), vars);
    const v = (await value.data())[0]!;
    tf.dispose([value, ...Object.values(grads)]);
    return v;
  });
  const grads = new Map<string, tf.Tensor>();
  for (const [name, v] of adapters.variables) grads.set(name, tf.tidy(() => tf.mul(tf.onesLike(v), 1e-3)));
  const update = await timed('LoRA AdamW update', runs, 1024, async () => {
    opt.step(grads, 1e-4);
    const first = [...adapters.variables.values()][0]!;
    return (await first.data())[0]!;
  });
  tf.dispose([...grads.values()]);
  return { forward_s: forward.median_s, forward_backward_s: backward.median_s, adamw_s: update.median_s };
}

async function matmulBench(): Promise<Record<string, unknown>[]> {
  const shapes: Array<[number, number, number, string]> = [
    [4096, 4096, 4096, '4096³'],
    [512, 11008, 4096, 'MLP up, 512 tokens'],
    [2048, 4096, 11008, 'MLP down, 2048 tokens'],
    [2048, 32000, 4096, 'LM head, 2048 tokens'],
  ];
  const out: Record<string, unknown>[] = [];
  for (const [M, N, K, label] of shapes) {
    const a = deviceUniform([M, K], 1, 1);
    const b = deviceUniform([K, N], 2, 1);
    const row: Record<string, unknown> = { label, M, N, K };
    for (const [kind, f] of [
      ['float32', () => float32MatMulTensors(a, b)],
      ['tensor_core', () => tensorCoreMatMulTensors(a, b, false, false, { a: false, b: false })],
      ['tensor_core_scaled', () => tensorCoreMatMulTensors(a, b, false, false, { a: true, b: true })],
    ] as const) {
      const first = f();
      if (!first) { row[kind] = null; continue; }
      await first.data();
      first.dispose();
      const iters = 10;
      const t0 = performance.now();
      let last: tf.Tensor | null = null;
      for (let i = 0; i < iters; i++) { last?.dispose(); last = f(); }
      await last!.data();
      last!.dispose();
      const s = (performance.now() - t0) / 1000 / iters;
      row[`${kind}_tflops`] = Number(((2 * M * N * K) / s / 1e12).toFixed(2));
    }
    const x = float32MatMulTensors(a, b);
    const y = tensorCoreMatMulTensors(a, b);
    if (y) {
      const [dx, dy] = [(await x.data()) as Float32Array, (await y.data()) as Float32Array];
      let md = 0, mr = 0;
      for (let i = 0; i < dx.length; i++) { md = Math.max(md, Math.abs(dx[i]! - dy[i]!)); mr = Math.max(mr, Math.abs(dx[i]!)); }
      row.rel_error = Number((md / mr).toExponential(3));
      y.dispose();
    }
    x.dispose();
    tf.dispose([a, b]);
    console.log('matmul', JSON.stringify(row));
    out.push(row);
  }
  await assertNoDeviceError('bench matmul');
  return out;
}

async function stabilityLoop(model: LlamaModel, steps: number): Promise<Record<string, unknown>> {
  const input = ids(4, 64, model.config.vocabSize, 99);
  const vars = [...model.params.values()];
  const samples: Array<Record<string, number | null>> = [];
  const t0 = performance.now();
  for (let s = 1; s <= steps; s++) {
    const { value, grads } = tf.variableGrads(() => model.loss(input), vars);
    tf.dispose(grads);
    const loss = (await value.data())[0]!;
    value.dispose();
    if (!Number.isFinite(loss)) throw new Error(`step ${s}: loss ${loss}`);
    if (s === 1 || s % Math.max(1, Math.floor(steps / 10)) === 0) {
      const m = memory();
      samples.push({ step: s, loss: Number(loss.toFixed(5)), numTensors: m.numTensors, liveBytes: m.live, pooledBytes: m.pooled, rssBytes: process.memoryUsage().rss });
      console.log(`stability ${JSON.stringify(samples[samples.length - 1])} ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      await assertNoDeviceError(`stability step ${s}`);
    }
  }
  input.dispose();
  const later = samples.filter((x) => (x.step as number) >= Math.max(2, Math.floor(steps / 10)));
  const grows = later.some((x) => x.numTensors !== later[0]!.numTensors || x.pooledBytes !== later[0]!.pooledBytes);
  return { steps, seconds: Number(((performance.now() - t0) / 1000).toFixed(1)), samples, memoryGrows: grows };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = new Date().toISOString();
  const backendInfo = await initBackend(args.backend, { precision: args.precision });
  // LOPPER_FUSED_OPS=0 measures precision mixed without the fused RMSNorm/SwiGLU/RoPE kernels.
  if (process.env.LOPPER_FUSED_OPS === '0') setFusedOpsEnabled(false);
  // LOPPER_WEBGPU_SUBMIT_BATCH=N: dispatches tfjs records per queue submit (tfjs default 15).
  if (process.env.LOPPER_WEBGPU_SUBMIT_BATCH) tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', Number(process.env.LOPPER_WEBGPU_SUBMIT_BATCH));
  const gpu = webGpuInfo();
  const record: Record<string, unknown> = {
    started, backend: backendInfo.backend, adapter: backendInfo.adapter ?? null, precision: args.precision,
    model: args.model, runs: args.runs, node: process.version, fusedOps: fusedOpsActive(),
    webgpu: gpu ? { features: gpu.features, limits: gpu.limits, mixed: gpu.mixed, dawnToggles: gpu.dawnToggles, notes: gpu.notes,
      subgroupMatrixConfigs: gpu.subgroupMatrixConfigs } : null,
    results: {} as Record<string, unknown>,
  };
  const results = record.results as Record<string, unknown>;
  const write = (): void => {
    record.deviceErrors = deviceErrors().map((e) => ({ ...e }));
    record.tensorCoreCalls = tensorCoreStats();
    record.finished = new Date().toISOString();
    if (args.out) writeFileSync(args.out, JSON.stringify(record, null, 2) + '\n');
  };
  try {
    if (args.matmul && backendInfo.backend === 'webgpu') results.matmul = await matmulBench();
    let model: LlamaModel;
    const t0 = performance.now();
    if (args.model === 'llama7b') {
      model = deviceRandomModel(llama7bConfig(), 1);
      await model.params.get('lm_head.weight')!.data().then(() => undefined, () => undefined);
    } else {
      const loaded = await loadModel(args.stories);
      model = LlamaModel.fromWeights(loaded.config, loaded.weights);
    }
    await assertNoDeviceError('bench model init');
    let nParams = 0;
    for (const v of model.params.values()) nParams += v.size;
    record.parameters = nParams;
    record.init_s = Number(((performance.now() - t0) / 1000).toFixed(2));
    console.log(`model ${args.model}: ${nParams} parameters, init ${record.init_s} s, backend ${backendInfo.backend} ${backendInfo.adapter ?? ''}`);
    const V = model.config.vocabSize;
    const ratio = (key: keyof typeof PYTORCH_H200_LLAMA7B, t: Timing, lowerIsBetter: boolean) => {
      if (args.model !== 'llama7b') return null;
      const ref = PYTORCH_H200_LLAMA7B[key];
      const mine = lowerIsBetter ? t.median_s : t.tokens_per_s;
      // > 1 means faster than PyTorch.
      return {
        vs_float32: Number((lowerIsBetter ? ref.float32 / mine : mine / ref.float32).toFixed(3)),
        vs_bfloat16: Number((lowerIsBetter ? ref.bfloat16 / mine : mine / ref.bfloat16).toFixed(3)),
      };
    };
    if (!args.skip.has('taylor')) {
      const input = ids(10, 64, V, 1);
      const names = projectionNames(model.config);
      const t = await timed('taylor [10,64]', args.runs, 640, () => taylorOnce(model, input, names));
      results.taylor_10x64 = { ...t, pytorch_ratio: ratio('taylor', t, true) };
      input.dispose();
      write();
    }
    for (const [B, key] of [[4, 'ppl_4x128'], [16, 'ppl_16x128']] as const) {
      if (args.skip.has(key)) continue;
      const input = ids(B, 128, V, 2 + B);
      const t = await timed(`perplexity [${B},128]`, args.runs, B * 128, () => perplexityOnce(model, input));
      results[key] = { ...t, pytorch_ratio: ratio(key, t, false) };
      input.dispose();
      write();
    }
    if (!args.skip.has('lora')) {
      const adapters = LoraAdapters.init(model.config, { r: 8, alpha: 16, dropout: 0, targets: [...LORA_TARGETS] }, 5);
      const opt = new AdamW(adapters.variables, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
      const input = ids(4, 256, V, 3);
      const t = await timed('LoRA step [4,256]', args.runs, 1024, () => loraOnce(model, adapters, opt, input));
      results.lora_4x256 = { ...t, pytorch_ratio: ratio('lora_4x256', t, false) };
      if (process.env.LOPPER_BENCH_LORA_PARTS === '1') results.lora_parts = await loraParts(model, adapters, opt, input, args.runs);
      input.dispose();
      opt.dispose();
      adapters.dispose();
      write();
    }
    if (args.stability > 0) {
      results.stability = await stabilityLoop(model, args.stability);
      write();
    }
    model.dispose();
  } catch (e) {
    record.error = { message: (e as Error).message, code: (e as { code?: string }).code ?? null };
    console.error('bench failed:', (e as Error).message);
    process.exitCode = 1;
  } finally {
    write();
  }
  // dawn.node keeps the process alive while its GPU object is referenced.
  process.exit();
}

await main();
