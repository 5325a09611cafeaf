// Training examples from token streams. A `TrainExample` is one sequence and which of its positions are targets:
// position t (t ≥ 1) is predicted from ids[0..t-1] when targets[t] = 1 (HF labels: −100 where 0). Plain text is
// packed the way transformers' run_clm `group_texts` does it — one stream, cut into `blockSize` pieces, tail dropped
// — so training windows look like the perplexity windows of DESIGN.md (one BOS at the stream's start).

export interface TrainExample {
  ids: number[];
  /** 1 where ids[t] is a label, 0 where it is masked (prompt tokens, padding). targets[0] is never used. */
  targets: Uint8Array;
}

/** Cuts one token stream into consecutive blocks of `blockSize` ids (the tail shorter than a block is dropped);
 * every position is a target. */
export function packStream(stream: readonly number[], blockSize: number): TrainExample[] {
  if (!Number.isInteger(blockSize) || blockSize < 2) throw new Error(`block size must be an integer ≥ 2, got ${blockSize}`);
  const out: TrainExample[] = [];
  for (let start = 0; start + blockSize <= stream.length; start += blockSize) {
    out.push({ ids: stream.slice(start, start + blockSize), targets: new Uint8Array(blockSize).fill(1) });
  }
  return out;
}

/** Plain text: the whole file is one string with one BOS at its start (as perplexity evaluation reads it). */
export function textStream(text: string, encode: (s: string) => number[], bosId: number): number[] {
  return [bosId, ...encodeLong(text, encode)];
}

/** JSONL text records: each document is BOS + its ids + EOS, documents concatenated. */
export function documentStream(texts: readonly string[], encode: (s: string) => number[], bosId: number, eosId: number): number[] {
  const out: number[] = [];
  for (const text of texts) {
    out.push(bosId);
    for (const id of encodeLong(text, encode)) out.push(id);
    out.push(eosId);
  }
  return out;
}

/** Encodes a long text line by line (keeping the newlines) so the tokenizer never sees megabytes at once. The
 * byte-level pre-tokenizer never merges across a newline followed by text, so the ids are those of one call. */
function encodeLong(text: string, encode: (s: string) => number[]): number[] {
  const out: number[] = [];
  const lines = text.split(/(?<=\n)/);
  for (const line of lines) for (const id of encode(line)) out.push(id);
  return out;
}

export interface MicroBatch {
  /** [rows, seqLen] int32, right-padded with `padId`. */
  ids: Int32Array;
  /** [rows, seqLen] float32 target weights (0 on padding and masked positions). */
  targets: Float32Array;
  rows: number;
  seqLen: number;
  /** Number of target positions (labels that count), t ≥ 1. */
  targetCount: number;
  /** Number of real (non-pad) tokens. */
  tokenCount: number;
}

/** Right-pads examples to the longest one. With causal attention, real tokens never attend to the padding after
 * them, so right padding with masked labels is exact (LLM-Pruner pads left, which needs position ids to match). */
export function collate(examples: readonly TrainExample[], padId = 0): MicroBatch {
  const seqLen = Math.max(...examples.map((e) => e.ids.length));
  const rows = examples.length;
  const ids = new Int32Array(rows * seqLen).fill(padId);
  const targets = new Float32Array(rows * seqLen);
  let targetCount = 0;
  let tokenCount = 0;
  examples.forEach((e, r) => {
    ids.set(e.ids, r * seqLen);
    tokenCount += e.ids.length;
    for (let t = 1; t < e.ids.length; t++) {
      if (e.targets[t]) { targets[r * seqLen + t] = 1; targetCount++; }
    }
  });
  return { ids, targets, rows, seqLen, targetCount, tokenCount };
}
