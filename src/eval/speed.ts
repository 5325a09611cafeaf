// Size and speed of a model: MACs of one forward pass and measured forward tokens/s on the current tfjs backend.
import type { LlamaConfig } from '../model/types.js';
import { batchTokenLogProbs, type LogProbModel } from './log-probs.js';

/**
 * Multiply-accumulates of one forward pass over a [1, seqLen] input, as LLM-Pruner's test_speedup.py counts them
 * (ptflops with an attention hook): every linear layer (q/k/v/o, gate/up/down, the LM head) plus the two attention
 * matmuls QKᵀ and AV over the full seqLen × seqLen score matrix. Norms, RoPE, softmax and the embedding lookup are
 * not counted. Dense LLaMA-7B at 64 tokens gives 423.93 G (the paper's table: 424.02 G).
 */
export function forwardMacs(config: LlamaConfig, seqLen: number): number {
  const t = seqLen;
  const h = config.hiddenSize;
  const d = config.headDim;
  let macs = t * h * config.vocabSize;
  for (const layer of config.layers) {
    const q = layer.numAttentionHeads * d;
    const kv = layer.numKeyValueHeads * d;
    macs += t * h * (2 * q + 2 * kv); // q, o and k, v projections
    macs += 2 * layer.numAttentionHeads * t * t * d; // QKᵀ and AV
    macs += 3 * t * h * layer.intermediateSize; // gate, up, down
  }
  return macs;
}

export interface SpeedOptions {
  seqLen: number;
  batchSize: number;
  /** Timed forward passes after one untimed warm-up pass. */
  iterations: number;
  vocabSize: number;
}

export interface SpeedResult {
  tokensPerSecond: number;
  /** Seconds of the timed passes. */
  seconds: number;
  tokens: number;
}

/** Deterministic ids spread over the vocabulary (the content does not change the work). */
function speedIds(batchSize: number, seqLen: number, vocabSize: number): Int32Array[] {
  return Array.from({ length: batchSize }, (_, b) =>
    Int32Array.from({ length: seqLen }, (_, t) => (b * 7919 + t * 104729 + 1) % vocabSize),
  );
}

/**
 * Forward-pass throughput: tokens of `iterations` passes over [batchSize, seqLen] (the log-prob forward that
 * perplexity uses, results read back so the device has finished) divided by their wall time. The first pass
 * compiles shaders / warms caches and is not timed.
 */
export async function measureTokensPerSecond(model: LogProbModel, options: SpeedOptions): Promise<SpeedResult> {
  const rows = speedIds(options.batchSize, options.seqLen, options.vocabSize);
  await batchTokenLogProbs(model, rows);
  const start = performance.now();
  for (let i = 0; i < options.iterations; i++) await batchTokenLogProbs(model, rows);
  const seconds = (performance.now() - start) / 1000;
  const tokens = options.iterations * options.batchSize * options.seqLen;
  return { tokensPerSecond: tokens / seconds, seconds, tokens };
}
