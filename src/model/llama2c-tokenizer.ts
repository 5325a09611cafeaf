// llama2.c tokenizer files (tokenizer.bin / tok512.bin): int32 max_token_length, then per token
// f32 score, int32 byte length, bytes. Pieces use ' ' where SentencePiece uses '▁'; byte tokens are "<0xXX>".
// encode() follows llama2.c run.c's encode(): a dummy-prefix space, one token per UTF-8 code point (byte fallback
// to id byte+3 when the code point is not a piece), then repeatedly merge the adjacent pair whose concatenation is
// the highest-scoring piece, leftmost first on ties. run.c does this in O(n²); here a heap keyed by
// (score desc, position asc) with lazy invalidation makes the same choices in O(n log n).
import { readFile } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import type { Tokenizer } from './types.js';

export interface Llama2cVocab {
  pieces: string[];
  scores: number[];
  bosId: number;
  eosId: number;
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** Parses tokenizer.bin bytes; `vocabSize` (from the model) bounds the count when given. */
export function parseLlama2cTokenizer(bytes: Uint8Array, source: string, vocabSize?: number): Llama2cVocab {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) throw new LopperError('LP3012', `${source}: too short for a llama2.c tokenizer`);
  const maxLen = dv.getInt32(0, true);
  if (maxLen <= 0 || maxLen > 1 << 16) throw new LopperError('LP3012', `${source}: max_token_length ${maxLen} is implausible; not a llama2.c tokenizer`);
  const pieces: string[] = [];
  const scores: number[] = [];
  const dec = new TextDecoder('utf-8');
  let off = 4;
  while (off < bytes.byteLength && (vocabSize === undefined || pieces.length < vocabSize)) {
    if (off + 8 > bytes.byteLength) throw new LopperError('LP3012', `${source}: truncated at token ${pieces.length}`);
    const score = dv.getFloat32(off, true);
    const len = dv.getInt32(off + 4, true);
    off += 8;
    if (len < 0 || len > maxLen || off + len > bytes.byteLength) {
      throw new LopperError('LP3012', `${source}: token ${pieces.length} has invalid length ${len} (max_token_length ${maxLen})`);
    }
    pieces.push(dec.decode(bytes.subarray(off, off + len)));
    scores.push(score);
    off += len;
  }
  if (vocabSize !== undefined && pieces.length < vocabSize) {
    throw new LopperError('LP3012', `${source}: holds ${pieces.length} tokens but the model's vocabulary has ${vocabSize}`);
  }
  return { pieces, scores, bosId: 1, eosId: 2 };
}

interface Cand { score: number; pos: number; left: number; right: number; id: number; leftVer: number; rightVer: number }

/** Binary max-heap on (score desc, pos asc). */
class CandHeap {
  private a: Cand[] = [];
  get size(): number { return this.a.length; }
  private less(x: Cand, y: Cand): boolean { return x.score > y.score || (x.score === y.score && x.pos < y.pos); }
  push(c: Cand): void {
    const a = this.a;
    a.push(c);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): Cand {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

export class Llama2cTokenizer implements Tokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly vocabSize: number;
  readonly vocab: Llama2cVocab;
  private readonly ids = new Map<string, number>();

  constructor(vocab: Llama2cVocab) {
    this.vocab = vocab;
    this.bosId = vocab.bosId;
    this.eosId = vocab.eosId;
    this.vocabSize = vocab.pieces.length;
    // First occurrence wins, as in run.c's sorted-vocab bsearch for unique pieces.
    vocab.pieces.forEach((p, i) => { if (!this.ids.has(p)) this.ids.set(p, i); });
  }

  encode(text: string): number[] {
    if (text.length === 0) return [];
    const toks: number[] = [];
    const space = this.ids.get(' ');
    if (space !== undefined) toks.push(space);
    const enc = new TextEncoder();
    for (const ch of text) {
      const id = this.ids.get(ch);
      if (id !== undefined) toks.push(id);
      else for (const b of enc.encode(ch)) toks.push(b + 3);
    }
    return this.merge(toks);
  }

  private merge(toks: number[]): number[] {
    const n = toks.length;
    const id = Int32Array.from(toks);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const ver = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
    const heap = new CandHeap();
    const pieces = this.vocab.pieces, scores = this.vocab.scores;
    const consider = (l: number, r: number): void => {
      if (l < 0 || r < 0) return;
      const m = this.ids.get(pieces[id[l]!]! + pieces[id[r]!]!);
      if (m === undefined) return;
      heap.push({ score: scores[m]!, pos: l, left: l, right: r, id: m, leftVer: ver[l]!, rightVer: ver[r]! });
    };
    for (let i = 0; i + 1 < n; i++) consider(i, i + 1);
    while (heap.size > 0) {
      const c = heap.pop();
      if (!alive[c.left] || !alive[c.right] || next[c.left] !== c.right || ver[c.left] !== c.leftVer || ver[c.right] !== c.rightVer) continue;
      // Merge right into left (the merged token keeps the left position, as run.c's array shift does).
      id[c.left] = c.id;
      ver[c.left]!++;
      alive[c.right] = 0;
      const nr = next[c.right]!;
      next[c.left] = nr;
      if (nr >= 0) prev[nr] = c.left;
      consider(prev[c.left]!, c.left);
      consider(c.left, nr);
    }
    const out: number[] = [];
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]!) out.push(id[i]!);
    return out;
  }

  decode(ids: number[]): string {
    const bytes: number[] = [];
    const enc = new TextEncoder();
    ids.forEach((t, k) => {
      let piece = this.vocab.pieces[t];
      if (piece === undefined) throw new LopperError('LP3017', `token id ${t} is outside the vocabulary (${this.vocabSize})`);
      if (t === this.bosId || t === this.eosId) piece = piece.trim();
      if (k === 0 && piece.startsWith(' ')) piece = piece.slice(1);
      const m = BYTE_PIECE.exec(piece);
      if (m) bytes.push(parseInt(m[1]!, 16));
      else for (const b of enc.encode(piece)) bytes.push(b);
    });
    return new TextDecoder('utf-8').decode(new Uint8Array(bytes));
  }

  /** An equivalent Hugging Face tokenizer.json (+ tokenizer_config.json), so written models are self-contained. */
  files(): Map<string, Uint8Array> {
    const enc = new TextEncoder();
    return new Map([
      ['tokenizer.json', enc.encode(JSON.stringify(hfTokenizerJson(this.vocab), null, 2))],
      ['tokenizer_config.json', enc.encode(JSON.stringify({
        add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: null,
        clean_up_tokenization_spaces: false, legacy: true, tokenizer_class: 'LlamaTokenizer',
      }, null, 2))],
    ]);
  }
}

function hfPiece(p: string, i: number, vocab: Llama2cVocab): string {
  if (i === vocab.bosId || i === vocab.eosId || i === 0) return p.trim();
  return p.replace(/ /g, '\u2581');
}

/**
 * The Hugging Face form of a SentencePiece-BPE vocabulary, built like transformers' LlamaConverter
 * (SentencePieceExtractor): merges are every split of a piece into two pieces, ordered by the merged piece's score.
 */
export function hfTokenizerJson(vocab: Llama2cVocab): Record<string, unknown> {
  const pieces = vocab.pieces.map((p, i) => hfPiece(p, i, vocab));
  const ids = new Map<string, number>();
  pieces.forEach((p, i) => { if (!ids.has(p)) ids.set(p, i); });
  const merges: { l: string; r: string; score: number; order: number }[] = [];
  pieces.forEach((p, i) => {
    if (i < 3 || BYTE_PIECE.test(p)) return;
    const cps = [...p];
    const local: { l: string; r: string }[] = [];
    for (let k = 1; k < cps.length; k++) {
      const l = cps.slice(0, k).join(''), r = cps.slice(k).join('');
      if (ids.has(l) && ids.has(r)) local.push({ l, r });
    }
    local.sort((a, b) => ids.get(a.l)! - ids.get(b.l)! || ids.get(a.r)! - ids.get(b.r)!);
    for (const m of local) merges.push({ ...m, score: vocab.scores[i]!, order: merges.length });
  });
  merges.sort((a, b) => b.score - a.score || a.order - b.order);
  const vocabObj: Record<string, number> = {};
  pieces.forEach((p, i) => { if (vocabObj[p] === undefined) vocabObj[p] = i; });
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(0, pieces[0]!), special(vocab.bosId, pieces[vocab.bosId]!), special(vocab.eosId, pieces[vocab.eosId]!)],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [vocab.bosId], tokens: ['<s>'] } },
    },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: {
      type: 'BPE', dropout: null, unk_token: pieces[0], continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: vocabObj, merges: merges.map((m) => [m.l, m.r]),
    },
  };
}

export async function loadLlama2cTokenizer(path: string, vocabSize?: number): Promise<Llama2cTokenizer> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (e) {
    throw new LopperError('LP3011', `${path}: tokenizer file not found (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      { hint: 'llama2.c checkpoints need their tokenizer .bin; name it with `tokenizer:` in the model entry.' });
  }
  return new Llama2cTokenizer(parseLlama2cTokenizer(bytes, path, vocabSize));
}
