// What the planner knows about a `models:` entry or a dataset on disk: its format, the files a stage reading it
// reads (these are hashed into cache keys and watched), and the model's layer count when a header tells it.
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ModelFormat } from '../model/types.js';

export interface ModelEntrySpec { path: string; tokenizer?: string; format?: ModelFormat }

/** .gguf → gguf, .bin → llama2c, anything else (a directory) → hf. */
export function modelFormat(entry: ModelEntrySpec): ModelFormat {
  if (entry.format) return entry.format;
  if (entry.path.toLowerCase().endsWith('.gguf')) return 'gguf';
  if (entry.path.toLowerCase().endsWith('.bin')) return 'llama2c';
  return 'hf';
}

const HF_TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model', 'special_tokens_map.json', 'added_tokens.json'];

export interface ModelFiles {
  format: ModelFormat;
  /** Absolute model path (directory for hf, file otherwise). */
  path: string;
  /** Absolute paths of the files a loader reads, sorted. */
  files: string[];
  /** Absolute path of the tokenizer the entry names (`tokenizer:`, a file or a directory with tokenizer.json). */
  tokenizer?: string;
  /** Key labels of the files that `tokenizer:` brings in (`tokenizer`, `tokenizer_config`), by absolute path. */
  tokenizerLabels: Record<string, string>;
  /** What is missing, for LP2008 (empty when everything is there); `field` is the entry's field to point at. */
  missing: { path: string; what: string; field?: 'tokenizer' }[];
}

/** Files of a model entry; `recipeDir` resolves relative paths. Never throws. */
export function modelFiles(entry: ModelEntrySpec, recipeDir: string): ModelFiles {
  const format = modelFormat(entry);
  const path = resolve(recipeDir, entry.path);
  const files: string[] = [];
  const missing: ModelFiles['missing'] = [];
  if (format === 'hf') {
    if (!isDirectory(path)) {
      missing.push({ path, what: existsSync(path) ? 'is not a directory (a Hugging Face model is a directory with config.json and *.safetensors)' : 'does not exist' });
    } else {
      const names = readdirSync(path).sort();
      if (!names.includes('config.json')) missing.push({ path: join(path, 'config.json'), what: 'does not exist' });
      const weights = names.filter((n) => n.endsWith('.safetensors') || n === 'model.safetensors.index.json');
      if (!weights.some((n) => n.endsWith('.safetensors'))) missing.push({ path: join(path, '*.safetensors'), what: 'matches no file' });
      for (const n of names) {
        if (n === 'config.json' || weights.includes(n) || HF_TOKENIZER_FILES.includes(n)) files.push(join(path, n));
      }
    }
  } else {
    if (isFile(path)) files.push(path);
    else missing.push({ path, what: 'does not exist' });
    if (format === 'llama2c' && entry.tokenizer === undefined) {
      const tok = llama2cTokenizer(path);
      if (tok && isFile(tok)) files.push(tok);
    }
  }
  // A tokenizer named in the entry is read by the loader whatever the format: a llama2.c .bin, a tokenizer.json
  // (with the tokenizer_config.json beside it, if any), or a directory holding those (src/model/tokenizer.ts).
  const tokenizer = entry.tokenizer !== undefined ? resolve(recipeDir, entry.tokenizer) : undefined;
  const tokenizerLabels: Record<string, string> = {};
  if (tokenizer !== undefined) {
    const main = isDirectory(tokenizer) && !tokenizer.endsWith('.bin') ? join(tokenizer, 'tokenizer.json') : tokenizer;
    if (isFile(main)) {
      tokenizerLabels[main] = 'tokenizer';
      const config = join(dirname(main), 'tokenizer_config.json');
      if (!main.endsWith('.bin') && isFile(config)) tokenizerLabels[config] = 'tokenizer_config';
      for (const f of Object.keys(tokenizerLabels)) if (!files.includes(f)) files.push(f);
    } else {
      missing.push({ path: main, what: 'does not exist', field: 'tokenizer' });
    }
  }
  return { format, path, files: files.sort(), ...(tokenizer !== undefined ? { tokenizer } : {}), tokenizerLabels, missing };
}

/** llama2.c ships tokenizer.bin (or tokNNN.bin for small vocabularies) next to the checkpoint. */
function llama2cTokenizer(binPath: string): string | undefined {
  const dir = dirname(binPath);
  if (!isDirectory(dir)) return undefined;
  const names = readdirSync(dir).sort();
  const name = names.find((n) => n === 'tokenizer.bin') ?? names.find((n) => /^tok\d+\.bin$/.test(n) && n !== basename(binPath));
  return name ? join(dir, name) : undefined;
}

export type LayerCount = { layers: number } | { layers: undefined; problem?: string };

/** Decoder layer count from config.json (hf) or the llama2.c header; gguf and missing files: unknown. */
export function modelLayerCount(entry: ModelEntrySpec, recipeDir: string): LayerCount {
  const format = modelFormat(entry);
  const path = resolve(recipeDir, entry.path);
  if (format === 'hf') {
    const config = join(path, 'config.json');
    if (!isFile(config)) return { layers: undefined };
    try {
      const json = JSON.parse(readFileSync(config, 'utf8')) as { num_hidden_layers?: unknown; n_layer?: unknown };
      const n = json.num_hidden_layers ?? json.n_layer;
      if (typeof n === 'number' && Number.isInteger(n) && n > 0) return { layers: n };
      return { layers: undefined, problem: `${config} has no positive integer num_hidden_layers` };
    } catch (e) {
      return { layers: undefined, problem: `${config} is not valid JSON (${(e as Error).message})` };
    }
  }
  if (format === 'llama2c') {
    if (!isFile(path)) return { layers: undefined };
    // Header: int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: unshared classifier), seq_len.
    const fd = openSync(path, 'r');
    try {
      const header = Buffer.alloc(28);
      if (readSync(fd, header, 0, 28, 0) < 28) return { layers: undefined, problem: `${path} is shorter than a llama2.c header` };
      const n = header.readInt32LE(8);
      return n > 0 ? { layers: n } : { layers: undefined, problem: `${path} has n_layers ${n} in its header` };
    } finally {
      closeSync(fd);
    }
  }
  return { layers: undefined };
}

export function isFile(path: string): boolean {
  try { return statSync(path).isFile(); } catch { return false; }
}

export function isDirectory(path: string): boolean {
  try { return statSync(path).isDirectory(); } catch { return false; }
}

/** Positions the model was built for: config.json's max_position_embeddings (hf) or the llama2.c header's seq_len. */
export function modelContextLength(entry: ModelEntrySpec, recipeDir: string): number | undefined {
  const format = modelFormat(entry);
  const path = resolve(recipeDir, entry.path);
  try {
    if (format === 'hf') {
      const config = join(path, 'config.json');
      if (!isFile(config)) return undefined;
      const n = (JSON.parse(readFileSync(config, 'utf8')) as { max_position_embeddings?: unknown }).max_position_embeddings;
      return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : undefined;
    }
    if (format === 'llama2c' && isFile(path)) {
      const fd = openSync(path, 'r');
      try {
        const header = Buffer.alloc(28);
        if (readSync(fd, header, 0, 28, 0) < 28) return undefined;
        const n = header.readInt32LE(24);
        return n > 0 ? n : undefined;
      } finally {
        closeSync(fd);
      }
    }
  } catch {
    // unreadable configs are reported by modelLayerCount's caller
  }
  return undefined;
}
