// Trains a byte-level BPE tokenizer (GPT-2 style) and writes it as a Hugging Face tokenizer.json that
// @huggingface/tokenizers and transformers' PreTrainedTokenizerFast load as is. Ids: 0 <unk>, 1 <s> (BOS),
// 2 </s> (EOS), 3…258 the 256 bytes in byte order, then one token per merge in merge order. `vocabSize` 259 gives a
// pure byte-level tokenizer (no merges). Words come from the ByteLevel pre-tokenizer's regex, so merges never cross
// the boundaries the encoder sees. Merge choice: highest pair count, ties to the lower (left id, right id) — this is
// deterministic but not HF tokenizers' own tie order, so the same corpus can give a different (equally valid) vocab.

const SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
export const SPECIAL_TOKENS = ['<unk>', '<s>', '</s>'] as const;
const FIRST_BYTE_ID = SPECIAL_TOKENS.length;
export const BYTE_LEVEL_VOCAB_SIZE = FIRST_BYTE_ID + 256;

/** GPT-2's bytes_to_unicode: printable stand-ins for every byte, as the ByteLevel pre-tokenizer writes them. */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  const out = new Array<string>(256);
  bs.forEach((b, i) => { out[b] = String.fromCharCode(cs[i]!); });
  return out;
})();

export interface BpeModel {
  /** Token strings by id. */
  tokens: string[];
  /** Merges in rank order, as pairs of token strings. */
  merges: [string, string][];
}

/** Learns merges until the vocabulary has `vocabSize` tokens (or no pair occurs twice). */
export function trainBpe(text: string, vocabSize: number): BpeModel {
  if (!Number.isInteger(vocabSize) || vocabSize < BYTE_LEVEL_VOCAB_SIZE) {
    throw new Error(`vocab_size must be an integer ≥ ${BYTE_LEVEL_VOCAB_SIZE} (3 special tokens + 256 bytes), got ${vocabSize}`);
  }
  const tokens: string[] = [...SPECIAL_TOKENS, ...BYTE_TO_UNICODE];
  const merges: [string, string][] = [];
  // Unique words with their counts, each as a sequence of token ids.
  const wordCounts = new Map<string, number>();
  for (const match of text.matchAll(SPLIT)) wordCounts.set(match[0], (wordCounts.get(match[0]) ?? 0) + 1);
  const encoder = new TextEncoder();
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [word, count] of wordCounts) {
    words.push(Array.from(encoder.encode(word), (b) => FIRST_BYTE_ID + b));
    freqs.push(count);
  }
  const V = vocabSize;
  const key = (a: number, b: number) => a * V + b;
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: number) => {
    const ids = words[w]!;
    for (let i = 0; i + 1 < ids.length; i++) {
      const k = key(ids[i]!, ids[i + 1]!);
      pairCounts.set(k, (pairCounts.get(k) ?? 0) + sign * freqs[w]!);
      if (sign > 0) { let s = pairWords.get(k); if (!s) pairWords.set(k, (s = new Set())); s.add(w); }
    }
  };
  for (let w = 0; w < words.length; w++) addPairs(w, 1);

  while (tokens.length < vocabSize) {
    let bestKey = -1;
    let bestCount = 1; // a pair seen once saves nothing
    for (const [k, c] of pairCounts) if (c > bestCount || (c === bestCount && bestKey >= 0 && k < bestKey)) { bestKey = k; bestCount = c; }
    if (bestKey < 0) break;
    const a = Math.floor(bestKey / V);
    const b = bestKey % V;
    const id = tokens.length;
    tokens.push(tokens[a]! + tokens[b]!);
    merges.push([tokens[a]!, tokens[b]!]);
    for (const w of pairWords.get(bestKey) ?? []) {
      addPairs(w, -1);
      const ids = words[w]!;
      const merged: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) { merged.push(id); i++; } else merged.push(ids[i]!);
      }
      words[w] = merged;
      addPairs(w, 1);
    }
    pairCounts.delete(bestKey);
    pairWords.delete(bestKey);
    for (const [k, c] of pairCounts) if (c <= 0) { pairCounts.delete(k); pairWords.delete(k); }
  }
  return { tokens, merges };
}

/** The tokenizer.json of a trained model (HF tokenizers serialization, BPE + ByteLevel, no post-processor: callers
 * add BOS themselves, as DESIGN.md specifies). `specialIds`: the ids of its special tokens (a trained model's are
 * the first SPECIAL_TOKENS.length; a GGUF gpt2 vocabulary names its own). */
export function tokenizerJson(model: BpeModel, specialIds: readonly number[] = SPECIAL_TOKENS.map((_, id) => id)): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  model.tokens.forEach((t, i) => { vocab[t] = i; });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specialIds.map((id) => ({
      id, content: model.tokens[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: model.merges,
    },
  };
}

/** tokenizer_config.json naming the special tokens for transformers. */
export function tokenizerConfigJson(): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>',
    add_bos_token: false, add_eos_token: false, clean_up_tokenization_spaces: false, model_max_length: 1000000000000000019884624838656,
  };
}

/** tokenizer.json + tokenizer_config.json bytes, ready to write into a model directory. */
export function tokenizerFiles(model: BpeModel): Map<string, Uint8Array> {
  const enc = new TextEncoder();
  return new Map([
    ['tokenizer.json', enc.encode(JSON.stringify(tokenizerJson(model)) + '\n')],
    ['tokenizer_config.json', enc.encode(JSON.stringify(tokenizerConfigJson(), null, 2) + '\n')],
  ]);
}
