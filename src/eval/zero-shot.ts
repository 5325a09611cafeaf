// Zero-shot multiple choice by log-likelihood (DESIGN.md; lm-evaluation-harness as pinned by LLM-Pruner):
// context ids = BOS + encode(context); continuation ids = (BOS + encode(context + continuation)) minus that prefix;
// score = Σ log p(continuation ids); acc = argmax score, acc_norm = argmax score ÷ character length of the
// continuation string.
import { LopperError } from '../errors/lopper-error.js';
import type { Tokenizer } from '../model/types.js';
import type { MultipleChoiceRecord } from '../data/jsonl.js';
import type { ChoiceRequest, Template, ZeroShotMetric } from './templates.js';
import { batchTokenLogProbs, nextTokenLogProbs, packedScores, type LogProbModel } from './log-probs.js';
import { packRequests, packedBatches } from './packing.js';

// On cpu/wasm tensor reads resolve as microtasks only: without a macrotask turn between batches, SIGINT and
// watch-mode events (which abort the signal) would not be seen until the loop ends.
const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

export interface EncodedRequest {
  /** Ids fed to the model: the context ids followed by the continuation ids (left-truncated to the model context). */
  ids: number[];
  /** Index in `ids` of the first continuation token. */
  start: number;
  /** Number of continuation tokens (≥ 1). */
  length: number;
  /** Whether BOS + encode(context) is a prefix of BOS + encode(context + continuation). */
  prefixMatched: boolean;
  /** Whether context + continuation was longer than the model context and lost its first ids. */
  truncated: boolean;
}

/**
 * Splits one (context, continuation) pair into ids. The concatenation is tokenized as a whole, so a token that
 * straddles the boundary is not split in a way the tokenizer would never produce. When the context's own ids are
 * not a prefix of the whole (a merge across the boundary), lm-evaluation-harness 0.4 `_encode_pair` is followed:
 * the continuation is the tail of the whole after the context's token count, and the model sees the context's own
 * ids followed by that tail. `prefixMatched` reports which case applied.
 */
export function encodeRequest(tokenizer: Tokenizer, request: ChoiceRequest, maxLength = Infinity): EncodedRequest {
  const contextIds = [tokenizer.bosId, ...tokenizer.encode(request.context)];
  const whole = [tokenizer.bosId, ...tokenizer.encode(request.context + request.continuation)];
  const continuationIds = whole.slice(contextIds.length);
  let prefixMatched = whole.length >= contextIds.length;
  for (let i = 0; prefixMatched && i < contextIds.length; i++) prefixMatched = whole[i] === contextIds[i];
  if (continuationIds.length === 0) {
    throw new LopperError(
      'LP5006',
      `continuation ${JSON.stringify(request.continuation)} adds no token after context ${JSON.stringify(request.context)}`,
      { hint: 'The tokenizer merged the continuation into the context; check the template and the record.' },
    );
  }
  let ids = [...contextIds, ...continuationIds];
  // lm-evaluation-harness's _loglikelihood_tokens: the model reads the last max_length + 1 ids minus the last (so
  // every output position sees at most max_length ids) and the continuation is scored over its last
  // min(len, max_length) ids. Feeding the max_length + 1 ids whole is the same: the causal outputs used never see
  // the last id.
  const truncated = ids.length > maxLength + 1;
  if (truncated) ids = ids.slice(ids.length - (maxLength + 1));
  const length = Math.min(continuationIds.length, ids.length - 1);
  return { ids, start: ids.length - length, length, prefixMatched, truncated };
}

/** Character length as Python's len(): code points, not UTF-16 units. */
export function characterLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** Index of the largest value; the first one on ties (numpy argmax). */
export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** acc / acc_norm predictions of one question from its choices' summed log-likelihoods. */
export function predictions(scores: readonly number[], continuations: readonly string[]): { acc: number; acc_norm: number } {
  return {
    acc: argmax(scores),
    acc_norm: argmax(scores.map((s, i) => s / characterLength(continuations[i]!))),
  };
}

export interface ZeroShotOptions {
  /** Rows per forward pass: one per question (its choices packed after their shared prefix) when the model scores packed rows, else one per choice; a question never spans two batches. */
  batchSize: number;
  /** Model context length: longer requests are left-truncated as lm-evaluation-harness does (encodeRequest). */
  maxLength?: number;
  signal?: AbortSignal;
  onProgress?: (questionsDone: number, questionsTotal: number) => void;
}

export interface ZeroShotResult {
  acc: number;
  /** Absent for templates that define acc only (WinoGrande partial scoring). */
  acc_norm?: number;
  questions: number;
  /** Requests whose context ids were not a prefix of the whole's ids (see encodeRequest). */
  prefixMismatches: number;
  /** Requests longer than the model context, left-truncated. */
  truncated: number;
  /** Per question, Σ log p of each choice's continuation. */
  scores: number[][];
  /** Questions scored with one context pass for all their one-token choices. */
  sharedContext: number;
}

interface Question {
  record: MultipleChoiceRecord;
  requests: ChoiceRequest[];
  encoded: EncodedRequest[];
  /** Every continuation is one token after the same context: one pass over the context scores all choices. */
  shared: boolean;
}

/** Largest logits block the shared-context path materializes (as the model's LM head chunking): 2^24 floats. */
const SHARED_LOGITS_ELEMENTS = 1 << 24;

function sharesOneTokenContext(encoded: readonly EncodedRequest[]): boolean {
  const first = encoded[0]!;
  return encoded.every(
    (e) => e.length === 1 && e.start === first.start && e.ids.length === first.ids.length && e.ids.every((id, i) => i >= e.start || id === first.ids[i]),
  );
}

/** Consecutive questions packed so that a batch holds at most `batchSize` sequences (at least one question). */
export function packQuestions(choiceCounts: readonly number[], batchSize: number): number[][] {
  const batches: number[][] = [];
  let current: number[] = [];
  let size = 0;
  choiceCounts.forEach((count, q) => {
    if (current.length > 0 && size + count > batchSize) {
      batches.push(current);
      current = [];
      size = 0;
    }
    current.push(q);
    size += count;
  });
  if (current.length > 0) batches.push(current);
  return batches;
}

/** Σ log p of each request's continuation, all requests in one forward pass (right-padded; causal, so exact). */
export async function scoreRequests(model: LogProbModel, requests: readonly EncodedRequest[], padId: number): Promise<number[]> {
  const length = Math.max(...requests.map((r) => r.ids.length));
  const rows = requests.map((r) => {
    const row = new Int32Array(length).fill(padId);
    row.set(r.ids);
    return row;
  });
  const logProbs = await batchTokenLogProbs(model, rows);
  const width = length - 1;
  return requests.map((r, b) => {
    let sum = 0;
    // logProbs[b, t] = log p(ids[t + 1] | ids[..t]): continuation token at index i is predicted at t = i - 1.
    for (let i = r.start; i < r.start + r.length; i++) sum += logProbs[b * width + i - 1]!;
    return sum;
  });
}

/** Progress and cancellation between batches, shared by the scoring paths. */
interface Batches {
  questions: Question[];
  scores: number[][];
  options: ZeroShotOptions;
  padId: number;
  /** Called after each batch with the number of questions it finished. */
  finished(n: number): void;
}

async function betweenBatches(options: ZeroShotOptions): Promise<void> {
  if (options.signal) await turn();
  options.signal?.throwIfAborted();
}

/**
 * Questions whose choices are single tokens after one shared context (e.g. " true" / " false" with a LLaMA
 * vocabulary) cost one row: the log-softmax at the context's last position scores every choice (lm-eval's
 * one-token continuation reuse).
 */
async function scoreShared(model: LogProbModel, indices: readonly number[], vocabSize: number, run: Batches): Promise<void> {
  const { questions, scores, options } = run;
  let pending: number[] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    await betweenBatches(options);
    const rows = pending.map((q) => questions[q]!.encoded[0]!.ids.slice(0, questions[q]!.encoded[0]!.start));
    const dists = await nextTokenLogProbs(model, rows, rows.map((r) => r.length - 1));
    pending.forEach((q, b) => {
      scores[q] = questions[q]!.encoded.map((e) => dists[b]![e.ids[e.start]!]!);
    });
    run.finished(pending.length);
    pending = [];
  };
  for (const q of indices) {
    const length = Math.max(questions[q]!.encoded[0]!.start, ...pending.map((p) => questions[p]!.encoded[0]!.start));
    if (pending.length > 0 && (pending.length + 1 > options.batchSize || (pending.length + 1) * length * vocabSize > SHARED_LOGITS_ELEMENTS)) {
      await flush();
    }
    pending.push(q);
  }
  await flush();
}

/** One row per question, its choices packed after their common prefix (packing.ts), longest rows first. */
async function scorePacked(model: LogProbModel, indices: readonly number[], run: Batches): Promise<void> {
  const { questions, scores, options } = run;
  const rows = indices.map((q) => packRequests(questions[q]!.encoded));
  for (const batch of packedBatches(rows.map((r) => r.ids.length), options.batchSize)) {
    await betweenBatches(options);
    const batchScores = await packedScores(model, batch.rows.map((k) => rows[k]!), batch.length, run.padId);
    batch.rows.forEach((k, b) => { scores[indices[k]!] = batchScores[b]!; });
    run.finished(batch.rows.length);
  }
}

/** One row per choice, consecutive questions per batch (models that only give next-token log-probs). */
async function scoreUnpacked(model: LogProbModel, indices: readonly number[], run: Batches): Promise<void> {
  const { questions, scores, options } = run;
  for (const packed of packQuestions(indices.map((i) => questions[i]!.requests.length), options.batchSize)) {
    await betweenBatches(options);
    const batch = packed.map((k) => indices[k]!);
    const batchScores = await scoreRequests(model, batch.flatMap((q) => questions[q]!.encoded), run.padId);
    let offset = 0;
    for (const q of batch) {
      const n = questions[q]!.requests.length;
      scores[q] = batchScores.slice(offset, offset + n);
      offset += n;
    }
    run.finished(batch.length);
  }
}

/** Scores every record of a task with its template and returns acc (and acc_norm where the template defines it). */
export async function zeroShot(
  model: LogProbModel,
  tokenizer: Tokenizer,
  records: readonly MultipleChoiceRecord[],
  template: Template,
  options: ZeroShotOptions,
): Promise<ZeroShotResult> {
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
    throw new LopperError('LP5011', `zero_shot batch_size must be a positive integer, got ${options.batchSize}`);
  }
  if (records.length === 0) {
    throw new LopperError('LP5011', 'a zero-shot task has no records to score', { hint: 'Check the dataset file and the task limit.' });
  }
  const questions: Question[] = records.map((record) => {
    const requests = template.requests(record);
    const encoded = requests.map((r) => encodeRequest(tokenizer, r, options.maxLength));
    return { record, requests, encoded, shared: model.logits !== undefined && sharesOneTokenContext(encoded) };
  });
  const scores: number[][] = new Array(questions.length);
  let done = 0;
  options.onProgress?.(0, questions.length);
  const run: Batches = {
    questions, scores, options, padId: tokenizer.eosId,
    finished(n) { done += n; options.onProgress?.(done, questions.length); },
  };
  // Every path scores a question the same whatever batch it runs in (causal attention, padding after the ids).
  const sharedIndex = questions.flatMap((q, i) => (q.shared ? [i] : []));
  const rowIndex = questions.flatMap((q, i) => (q.shared ? [] : [i]));
  await scoreShared(model, sharedIndex, tokenizer.vocabSize, run);
  await (model.targetLogProbs ? scorePacked(model, rowIndex, run) : scoreUnpacked(model, rowIndex, run));
  let accHits = 0;
  let normHits = 0;
  questions.forEach((q, i) => {
    const predicted = predictions(scores[i]!, q.requests.map((r) => r.continuation));
    if (predicted.acc === q.record.label) accHits++;
    if (predicted.acc_norm === q.record.label) normHits++;
  });
  const n = questions.length;
  const result: ZeroShotResult = {
    acc: accHits / n,
    questions: questions.length,
    prefixMismatches: questions.reduce((m, q) => m + q.encoded.filter((e) => !e.prefixMatched).length, 0),
    truncated: questions.reduce((m, q) => m + q.encoded.filter((e) => e.truncated).length, 0),
    scores,
    sharedContext: sharedIndex.length,
  };
  if (template.metrics.includes('acc_norm' satisfies ZeroShotMetric)) result.acc_norm = normHits / n;
  return result;
}
