// Perplexity, DESIGN.md protocol (LLM-Pruner evaluator/ppl.py): the whole dataset is one string, tokenized once with
// one BOS at the start, cut into non-overlapping seq_len windows with the tail dropped; every window is scored on its
// own (its first token is never predicted) and PPL = exp(mean NLL over every predicted token of every window).
import { readFile } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import type { DatasetSpec } from '../stages/types.js';
import type { Tokenizer } from '../model/types.js';
import { batchTokenLogProbs, type LogProbModel } from './log-probs.js';
import { readJsonl } from '../data/jsonl.js';

// On cpu/wasm tensor reads resolve as microtasks only: without a macrotask turn between batches, SIGINT and
// watch-mode events (which abort the signal) would not be seen until the loop ends.
const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

export interface PerplexityOptions {
  seqLen: number;
  /** Windows per forward pass. Does not change the result beyond float32 rounding. */
  batchSize: number;
  /** Score only the first `limit` windows. */
  limit?: number;
  /** The dataset the ids come from, named in errors. */
  source?: { name: string; path: string };
  signal?: AbortSignal;
  onProgress?: (windowsDone: number, windowsTotal: number) => void;
}

export interface PerplexityResult {
  perplexity: number;
  /** Mean negative log-likelihood per predicted token (nats). */
  nll: number;
  /** Predicted tokens: windows × (seq_len − 1). */
  tokens: number;
  windows: number;
  /** Windows in the whole dataset, before `limit`. */
  windowsAvailable: number;
  /** Token ids of the whole dataset, BOS included. */
  ids: number;
}

/** Full windows of `seqLen` ids in a stream of `idCount` ids (tail dropped). */
export function windowCount(idCount: number, seqLen: number): number {
  return Math.floor(idCount / seqLen);
}

/** The dataset's ids: BOS followed by the whole text encoded once. */
export function perplexityIds(tokenizer: Tokenizer, text: string): Int32Array {
  const encoded = tokenizer.encode(text);
  const ids = new Int32Array(encoded.length + 1);
  ids[0] = tokenizer.bosId;
  ids.set(encoded, 1);
  return ids;
}

/**
 * The text a perplexity dataset stands for: a `text` file as is; a `jsonl` file's `field` values (default "text")
 * joined with "\n\n", as LLM-Pruner joins dataset rows.
 */
export async function perplexityText(dataset: DatasetSpec): Promise<string> {
  if (dataset.format === 'text') {
    let text: string;
    try {
      text = await readFile(dataset.path, 'utf8');
    } catch (cause) {
      throw new LopperError('LP5012', `cannot read dataset "${dataset.name}" at ${dataset.path}: ${(cause as Error).message}`, {
        location: { file: dataset.path },
        cause,
      });
    }
    if (text.trim() === '') {
      throw new LopperError('LP5008', `dataset "${dataset.name}" is empty; perplexity needs text to score`, { location: { file: dataset.path } });
    }
    return text;
  }
  if (dataset.format === 'jsonl') {
    const field = typeof dataset.options.field === 'string' ? dataset.options.field : 'text';
    const rows = await readJsonl(dataset.path);
    return rows
      .map(({ line, value }) => {
        const text = (value as Record<string, unknown> | null)?.[field];
        if (typeof text !== 'string') {
          throw new LopperError('LP5002', `line ${line} of ${dataset.path} has no string field "${field}"`, {
            location: { file: dataset.path, line },
            hint: 'Set `field:` on the dataset entry to the JSON key that holds the text.',
          });
        }
        return text;
      })
      .join('\n\n');
  }
  throw new LopperError('LP5007', `dataset "${dataset.name}" has format ${dataset.format}; perplexity reads text or jsonl datasets`, {
    hint: 'Use a `format: text` (or `format: jsonl` with `field:`) dataset under perplexity.datasets.',
  });
}

/** Scores the windows of `ids` and returns PPL with its parts. NLL is accumulated in float64. */
export async function perplexity(model: LogProbModel, ids: Int32Array, options: PerplexityOptions): Promise<PerplexityResult> {
  const { seqLen, batchSize } = options;
  if (!Number.isInteger(seqLen) || seqLen < 2) {
    throw new LopperError('LP5011', `perplexity seq_len must be an integer ≥ 2, got ${seqLen}`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new LopperError('LP5011', `perplexity batch_size must be a positive integer, got ${batchSize}`);
  }
  const available = windowCount(ids.length, seqLen);
  if (available === 0) {
    const what = options.source ? `dataset "${options.source.name}"` : 'the dataset';
    throw new LopperError('LP5008', `${what} has ${ids.length} token ids (BOS included), fewer than one window of seq_len ${seqLen}`, {
      hint: 'Lower perplexity.seq_len or use a longer dataset.', ...(options.source ? { location: { file: options.source.path } } : {}),
    });
  }
  const windows = options.limit === undefined ? available : Math.min(available, options.limit);
  let nllSum = 0;
  options.onProgress?.(0, windows);
  for (let first = 0; first < windows; first += batchSize) {
    if (options.signal) await turn();
    options.signal?.throwIfAborted();
    const count = Math.min(batchSize, windows - first);
    const rows: Int32Array[] = [];
    for (let w = first; w < first + count; w++) rows.push(ids.subarray(w * seqLen, (w + 1) * seqLen));
    const logProbs = await batchTokenLogProbs(model, rows);
    for (let i = 0; i < logProbs.length; i++) nllSum -= logProbs[i]!;
    options.onProgress?.(first + count, windows);
  }
  const tokens = windows * (seqLen - 1);
  const nll = nllSum / tokens;
  return { perplexity: Math.exp(nll), nll, tokens, windows, windowsAvailable: available, ids: ids.length };
}
