// Calibration batches for importance estimation (DESIGN.md `calibration`). A record is BOS + the tokenizer's ids of
// one text record (src/data/text.ts); records with fewer than seq_len ids (BOS included) are never used.
// - sequential: the first `samples` usable records in file order, each cut to its first seq_len ids.
// - random (LLM-Pruner's get_examples: random rows, rejected when too short or already picked, then a random
//   seq_len window): a mulberry32 generator seeded with deriveSeed(seed) visits the records in a seeded random order
//   without replacement (lazy Fisher–Yates: step i swaps position i with i + floor(u·(n − i)), one draw u), skips
//   records shorter than seq_len, and for each accepted record draws one more u for the window start
//   floor(u·(len − seq_len + 1)). Same distribution as LLM-Pruner's rejection loop, but it cannot loop forever.
import { LopperError } from '../errors/lopper-error.js';
import { deriveSeed, mulberry32 } from '../seeded-random.js';

export type Sampling = 'sequential' | 'random';

export interface CalibrationOptions {
  samples: number;
  seqLen: number;
  sampling: Sampling;
  seed: number;
}

export interface CalibrationTokenizer {
  encode(text: string): number[];
  readonly bosId: number;
}

/** [samples, seqLen] token ids, row-major. */
export interface CalibrationBatch {
  ids: Int32Array;
  samples: number;
  seqLen: number;
  /** Index of the record each row came from (in the dataset's record order) and the window start. */
  records: Array<{ record: number; start: number }>;
}

function recordIds(tokenizer: CalibrationTokenizer, text: string): number[] {
  return [tokenizer.bosId, ...tokenizer.encode(text)];
}

function tooShort(found: number, opts: CalibrationOptions, records: number, name: string): LopperError {
  return new LopperError('LP4005', `calibration dataset "${name}" has ${found} record(s) of at least ${opts.seqLen} tokens (of ${records}); ${opts.samples} are needed`, {
    hint: 'Lower calibration.samples or calibration.seq_len, or use a larger dataset.',
  });
}

export function calibrationBatch(records: string[], tokenizer: CalibrationTokenizer, opts: CalibrationOptions, datasetName = 'calibration'): CalibrationBatch {
  const { samples, seqLen } = opts;
  if (!Number.isInteger(samples) || samples < 1 || !Number.isInteger(seqLen) || seqLen < 2) {
    throw new LopperError('LP4005', `calibration needs samples >= 1 and seq_len >= 2 (integers), got samples ${samples}, seq_len ${seqLen}`);
  }
  const ids = new Int32Array(samples * seqLen);
  const picked: Array<{ record: number; start: number }> = [];
  const take = (row: number[], record: number, start: number) => {
    ids.set(row.slice(start, start + seqLen), picked.length * seqLen);
    picked.push({ record, start });
  };
  if (opts.sampling === 'sequential') {
    for (let r = 0; r < records.length && picked.length < samples; r++) {
      const row = recordIds(tokenizer, records[r]!);
      if (row.length >= seqLen) take(row, r, 0);
    }
  } else {
    const random = mulberry32(deriveSeed(opts.seed));
    const order = Array.from({ length: records.length }, (_, i) => i);
    for (let i = 0; i < order.length && picked.length < samples; i++) {
      const j = i + Math.floor(random() * (order.length - i));
      [order[i], order[j]] = [order[j]!, order[i]!];
      const r = order[i]!;
      const row = recordIds(tokenizer, records[r]!);
      if (row.length < seqLen) continue;
      take(row, r, Math.floor(random() * (row.length - seqLen + 1)));
    }
  }
  if (picked.length < samples) throw tooShort(picked.length, opts, records.length, datasetName);
  return { ids, samples, seqLen, records: picked };
}
