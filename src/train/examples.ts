// Training examples from a recipe dataset: `text` (one stream, packed into cutoff_len blocks), `jsonl` (documents
// from the `field` of each record, BOS…EOS, packed), `alpaca` (one example per record, prompt masked unless
// train_on_inputs). A validation split takes `valSize` examples out by a seeded draw (HF train_test_split-like).
import { readFile } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import type { Tokenizer } from '../model/types.js';
import type { DatasetSpec } from '../stages/types.js';
import { alpacaExample, parseAlpaca } from '../data/alpaca.js';
import { documentStream, packStream, textStream, type TrainExample } from '../data/packing.js';
import { deriveSeed, seededPermutation } from '../seeded-random.js';

export interface ExampleOptions {
  cutoffLen: number;
  trainOnInputs: boolean;
}

/** The raw text a tokenizer can be trained on (texts joined; alpaca: prompt + output). */
export async function datasetText(spec: DatasetSpec): Promise<string> {
  const text = await readFile(spec.path, 'utf8');
  if (spec.format === 'text') return text;
  if (spec.format === 'jsonl') return jsonlTexts(spec, text).join('\n');
  if (spec.format === 'alpaca') return parseAlpaca(text, spec.path).map((r) => [r.instruction, r.input, r.output].filter(Boolean).join('\n')).join('\n');
  throw unsupported(spec);
}

function unsupported(spec: DatasetSpec): LopperError {
  return new LopperError('LP6002', `dataset ${spec.name}: format "${spec.format}" cannot be trained on`, { hint: 'Training reads text, jsonl or alpaca datasets.' });
}

function jsonlTexts(spec: DatasetSpec, text: string): string[] {
  const field = typeof spec.options.field === 'string' ? spec.options.field : 'text';
  return text.split('\n').flatMap((line, i) => {
    if (line.trim() === '') return [];
    let rec: unknown;
    try { rec = JSON.parse(line); } catch (e) {
      throw new LopperError('LP6008', `${spec.path}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    const v = (rec as Record<string, unknown>)[field];
    if (typeof v !== 'string') throw new LopperError('LP6008', `${spec.path}:${i + 1}: field "${field}" is not a string`, { hint: 'Set `field:` on the dataset to the record field holding the text.' });
    return [v];
  });
}

export async function datasetExamples(spec: DatasetSpec, tokenizer: Tokenizer, opts: ExampleOptions): Promise<TrainExample[]> {
  const text = await readFile(spec.path, 'utf8');
  const encode = (s: string) => tokenizer.encode(s);
  let examples: TrainExample[];
  if (spec.format === 'text') examples = packStream(textStream(text, encode, tokenizer.bosId), opts.cutoffLen);
  else if (spec.format === 'jsonl') examples = packStream(documentStream(jsonlTexts(spec, text), encode, tokenizer.bosId, tokenizer.eosId), opts.cutoffLen);
  else if (spec.format === 'alpaca') {
    let records;
    try { records = parseAlpaca(text, spec.path); } catch (e) { throw new LopperError('LP6008', (e as Error).message); }
    examples = records.map((r) => alpacaExample(r, encode, tokenizer.bosId, opts.cutoffLen, opts.trainOnInputs));
  } else throw unsupported(spec);
  return examples;
}

/** Splits off `valSize` examples chosen by a seeded permutation; both parts keep the original order. */
export function splitValidation<T>(examples: readonly T[], valSize: number, seed: number): { train: T[]; val: T[] } {
  if (valSize === 0) return { train: [...examples], val: [] };
  const held = new Set(seededPermutation(examples.length, deriveSeed(seed, 0x7a1)).slice(0, valSize));
  return { train: examples.filter((_, i) => !held.has(i)), val: examples.filter((_, i) => held.has(i)) };
}
