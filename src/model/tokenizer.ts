// Tokenizers: Hugging Face tokenizer.json through @huggingface/tokenizers (reproduces the Rust library's ids on
// the fixtures), and llama2.c tokenizer .bin files (see llama2c-tokenizer.ts). encode() never adds special tokens;
// callers prepend BOS themselves (DESIGN.md).
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { LopperError } from '../errors/lopper-error.js';
import type { Tokenizer } from './types.js';
import { loadLlama2cTokenizer } from './llama2c-tokenizer.js';

interface HfTokenizerJson {
  model?: { type?: string; vocab?: Record<string, number> | [string, number][] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

class HfTokenizer implements Tokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly vocabSize: number;
  private readonly impl: HfTokenizerImpl;
  private readonly sourceFiles: Map<string, Uint8Array>;

  constructor(json: HfTokenizerJson, config: Record<string, unknown>, sourceFiles: Map<string, Uint8Array>) {
    this.impl = new HfTokenizerImpl(json, config);
    this.sourceFiles = sourceFiles;
    const ids = new Map<string, number>();
    const vocab = json.model?.vocab;
    if (Array.isArray(vocab)) vocab.forEach(([tok], i) => ids.set(tok, i));
    else if (vocab) for (const [tok, id] of Object.entries(vocab)) ids.set(tok, id);
    let maxId = -1;
    for (const id of ids.values()) maxId = Math.max(maxId, id);
    for (const t of json.added_tokens ?? []) {
      ids.set(t.content, t.id);
      maxId = Math.max(maxId, t.id);
    }
    this.vocabSize = maxId + 1;
    const tokenName = (v: unknown): string | undefined =>
      typeof v === 'string' ? v : typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : undefined;
    const bos = tokenName(config.bos_token);
    const eos = tokenName(config.eos_token);
    this.bosId = (bos !== undefined ? ids.get(bos) : undefined) ?? ids.get('<s>') ?? ids.get('<|begin_of_text|>') ?? 1;
    this.eosId = (eos !== undefined ? ids.get(eos) : undefined) ?? ids.get('</s>') ?? ids.get('<|end_of_text|>') ?? 2;
  }

  encode(text: string): number[] {
    return this.impl.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: number[]): string {
    return this.impl.decode(ids, { skip_special_tokens: false });
  }

  files(): Map<string, Uint8Array> {
    return new Map(this.sourceFiles);
  }
}

/** Whether `t` is a tokenizer.json tokenizer (rebuilt exactly from its files(), e.g. in another thread). */
export function isHfTokenizer(t: Tokenizer): boolean {
  return t instanceof HfTokenizer;
}

/** Builds a tokenizer from the bytes of tokenizer.json (and optionally tokenizer_config.json). */
export function hfTokenizerFromBytes(tokenizerJson: Uint8Array, tokenizerConfig?: Uint8Array, source = 'tokenizer.json'): Tokenizer {
  let json: HfTokenizerJson;
  let config: Record<string, unknown> = {};
  try {
    json = JSON.parse(new TextDecoder().decode(tokenizerJson)) as HfTokenizerJson;
  } catch (e) {
    throw new LopperError('LP3012', `${source}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || typeof json.model !== 'object') {
    throw new LopperError('LP3012', `${source}: not a Hugging Face tokenizer.json (no "model" object)`);
  }
  if (tokenizerConfig) {
    try {
      config = JSON.parse(new TextDecoder().decode(tokenizerConfig)) as Record<string, unknown>;
    } catch (e) {
      throw new LopperError('LP3012', `${source}: tokenizer_config.json next to it is not valid JSON (${(e as Error).message})`);
    }
  }
  const files = new Map<string, Uint8Array>([['tokenizer.json', tokenizerJson]]);
  if (tokenizerConfig) files.set('tokenizer_config.json', tokenizerConfig);
  try {
    return new HfTokenizer(json, config, files);
  } catch (e) {
    if (e instanceof LopperError) throw e;
    throw new LopperError('LP3012', `${source}: unsupported tokenizer (${(e as Error).message})`);
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Loads a tokenizer from a tokenizer.json file, a directory holding one (tokenizer_config.json beside it is used
 * for BOS/EOS), or a llama2.c tokenizer .bin file.
 */
export async function loadTokenizer(path: string): Promise<Tokenizer> {
  if (path.endsWith('.bin')) return loadLlama2cTokenizer(path);
  const file = (await isDir(path)) ? join(path, 'tokenizer.json') : path;
  const bytes = await readIfExists(file);
  if (!bytes) {
    throw new LopperError('LP3011', `${file}: tokenizer file not found`,
      { hint: 'Put tokenizer.json in the model directory, or name a tokenizer file in the model entry (`tokenizer:`).' });
  }
  const cfg = await readIfExists(join(file, '..', 'tokenizer_config.json'));
  return hfTokenizerFromBytes(bytes, cfg, file);
}
