// Dropout of a [rows, cols] activation `count` times (LLaMA-7B LoRA: 224 adapted projections per micro-batch, x of
// [B·T, 4096]) with lopper's counter-based dropout against tf.dropout, on the chosen backend. Each timed run issues
// every op, then reads back one scalar, so queued GPU work is included. Medians of --runs after one warm-up.
//
//   node --import tsx bench/dropout-bench.ts --backend webgpu [--rows 1024 --cols 4096 --count 224 --runs 3 --rate 0.05]
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendKind } from '../src/backend/index.js';
import { dropout } from '../src/backend/dropout.js';
import { deriveSeed } from '../src/seeded-random.js';

interface Args {
  backend: BackendKind;
  rows: number;
  cols: number;
  count: number;
  runs: number;
  rate: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { backend: 'webgpu', rows: 1024, cols: 4096, count: 224, runs: 3, rate: 0.05 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]!.replace(/^--/, '') as keyof Args;
    const value = argv[i + 1];
    if (!(key in args) || value === undefined) throw new Error(`unknown or incomplete option ${argv[i]}`);
    (args as unknown as Record<string, unknown>)[key] = key === 'backend' ? value : Number(value);
  }
  return args;
}

type DropoutFn = (x: tf.Tensor, rate: number, seed: number) => tf.Tensor;

const variants: Record<string, DropoutFn> = {
  counter: (x, rate, seed) => dropout(x, rate, seed),
  'tf.dropout': (x, rate, seed) => tf.dropout(x, rate, undefined, seed),
};

/** Seconds for `count` dropouts of x, each output reduced into a running sum so that none is optimised away. */
async function timeRun(f: DropoutFn, x: tf.Tensor, args: Args, run: number): Promise<number> {
  const start = performance.now();
  let acc = tf.scalar(0);
  for (let k = 0; k < args.count; k++) {
    const next = tf.tidy(() => tf.add(acc, tf.sum(f(x, args.rate, deriveSeed(run, k)))));
    acc.dispose();
    acc = next;
  }
  await acc.data();
  acc.dispose();
  return (performance.now() - start) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const info = await initBackend(args.backend);
  console.log(`backend ${info.backend}${info.adapter ? ` (${info.adapter})` : ''}; x [${args.rows}, ${args.cols}] × ${args.count}, rate ${args.rate}`);
  const x = tf.tidy(() => tf.reshape(tf.add(tf.mul(tf.range(0, args.rows * args.cols, 1, 'float32'), 1e-6), 1), [args.rows, args.cols]));
  for (const [name, f] of Object.entries(variants)) {
    await timeRun(f, x, { ...args, count: Math.min(args.count, 4) }, 0);
    const times: number[] = [];
    for (let r = 0; r < args.runs; r++) times.push(await timeRun(f, x, args, r + 1));
    const s = median(times);
    const gbs = (2 * 4 * args.rows * args.cols * args.count) / s / 1e9;
    console.log(`${name.padEnd(10)} median ${s.toFixed(3)} s  (${(1000 * s / args.count).toFixed(2)} ms per dropout, ${gbs.toFixed(1)} GB/s read+write)  runs ${times.map((t) => t.toFixed(3)).join(' ')}`);
  }
  x.dispose();
  if (info.backend === 'webgpu') {
    const { disposeWebGpu } = await import('../src/backend/webgpu.js');
    await disposeWebGpu();
  }
}

await main();
