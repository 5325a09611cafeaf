// Packing a question's choices into one row: the ids every choice shares are run once, each choice's remaining ids
// follow as a branch that sees the shared prefix and itself only, at the positions it would have alone
// (TokenLayout). The log-likelihoods are those of one sequence per choice, for the prefix's length once.
// Rows are sorted by length and padded to a bounded set of lengths, so an evaluation compiles and pools a bounded
// set of shapes (variable-length batches had filled a 141 GB GPU with pooled buffers of one-off sizes).
import type { EncodedRequest } from './zero-shot.js';

export interface PackedRow {
  ids: number[];
  positions: number[];
  segments: number[];
  /** Per index: the id whose log-probability that position's output is read for (0 where none is read). */
  targets: number[];
  /** Per request: the row indices whose target log-probabilities sum to its score. */
  scored: number[][];
}

function commonPrefixLength(rows: readonly (readonly number[])[]): number {
  const first = rows[0]!;
  let p = 0;
  while (p < first.length && rows.every((r) => p < r.length && r[p] === first[p])) p++;
  return p;
}

/**
 * One row for the requests of a question. The shared prefix stops one id short of the common prefix: the output at
 * a prefix position is read with one target for every branch, and the common prefix's last output predicts each
 * branch's own next id, so that id opens every branch instead.
 */
export function packRequests(requests: readonly EncodedRequest[]): PackedRow {
  const shared = Math.max(0, commonPrefixLength(requests.map((r) => r.ids)) - 1);
  const prefix = requests[0]!.ids.slice(0, shared);
  const row: PackedRow = {
    ids: [...prefix],
    positions: prefix.map((_, t) => t),
    segments: prefix.map(() => 0),
    targets: prefix.map((_, t) => requests[0]!.ids[t + 1]!),
    scored: [],
  };
  requests.forEach((r, j) => {
    const offset = row.ids.length;
    for (let t = shared; t < r.ids.length; t++) {
      row.ids.push(r.ids[t]!);
      row.positions.push(t);
      row.segments.push(j + 1);
      row.targets.push(t + 1 < r.ids.length ? r.ids[t + 1]! : 0);
    }
    // Continuation id i is predicted by the output at position i - 1.
    const scored: number[] = [];
    for (let i = r.start; i < r.start + r.length; i++) scored.push(i - 1 < shared ? i - 1 : offset + (i - 1 - shared));
    row.scored.push(scored);
  });
  return row;
}

/** The padded length of a row: a multiple of 16 up to 256, of 64 beyond (a bounded set of shapes). */
export function bucketLength(length: number): number {
  const step = length <= 256 ? 16 : 64;
  return Math.ceil(length / step) * step;
}

/** Most ids in one forward pass of packed rows (bounds the [B, heads, T, T] attention scores with B·T). */
export const PACKED_BATCH_TOKENS = 8192;

/**
 * Batches of row indices, longest rows first: each batch holds at most `batchSize` rows and, beyond its first row,
 * at most PACKED_BATCH_TOKENS ids once padded to its longest row's bucket.
 */
export function packedBatches(lengths: readonly number[], batchSize: number): { rows: number[]; length: number }[] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const batches: { rows: number[]; length: number }[] = [];
  for (let i = 0; i < order.length; ) {
    const length = bucketLength(lengths[order[i]!]!);
    const size = Math.max(1, Math.min(batchSize, Math.floor(PACKED_BATCH_TOKENS / length)));
    batches.push({ rows: order.slice(i, i + size), length });
    i += size;
  }
  return batches;
}

/** The [B, T] ids, targets and layout of a batch of rows padded to `length` (padding is its own segment). */
export function batchArrays(rows: readonly PackedRow[], length: number, padId: number): { ids: Int32Array; targets: Int32Array; positions: Int32Array; segments: Int32Array } {
  const n = rows.length * length;
  const ids = new Int32Array(n).fill(padId), targets = new Int32Array(n), positions = new Int32Array(n);
  const segments = new Int32Array(n).fill(-1);
  rows.forEach((r, b) => {
    ids.set(r.ids, b * length);
    targets.set(r.targets, b * length);
    positions.set(r.positions, b * length);
    segments.set(r.segments, b * length);
  });
  return { ids, targets, positions, segments };
}
