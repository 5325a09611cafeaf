// Why a stage will run: a field-level diff of its key inputs against the newest stored output of the same stage id
// ("params.ratio 0.25 -> 0.5", "file …/calib.txt changed", "upstream scores key changed", "backend cpu -> wasm").
import type { PlannedStage } from '../plan/types.js';
import type { Store } from './store.js';

type Leaf = { path: string[]; value: unknown };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function flatten(value: unknown, path: string[] = [], out: Leaf[] = []): Leaf[] {
  if (isPlainObject(value) && Object.keys(value).length > 0) {
    for (const k of Object.keys(value).sort()) flatten(value[k], [...path, k], out);
  } else {
    out.push({ path, value });
  }
  return out;
}

const UPSTREAM = new Set(['upstream', 'upstreamKeys', 'upstream_keys', 'inputs', 'deps', 'dependsOn']);
const FILES = new Set(['files', 'fileHashes', 'file_hashes', 'hashes']);
const NUMERICS = new Set(['numerics', 'runtime']);

function show(v: unknown): string {
  if (v === undefined) return '(unset)';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

function looksLikePath(s: string): boolean {
  return s.startsWith('/') || s.includes('/') || /\.[a-z0-9]{1,12}$/i.test(s);
}

/** One human-readable line per changed leaf of the key inputs. */
export function diffKeyInputs(before: Record<string, unknown>, after: Record<string, unknown>, stage?: Pick<PlannedStage, 'models' | 'modelRefs' | 'datasets'>): string[] {
  const a = new Map(flatten(before).map((l) => [JSON.stringify(l.path), l]));
  const b = new Map(flatten(after).map((l) => [JSON.stringify(l.path), l]));
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  const lines: string[] = [];
  const seenUpstream = new Set<string>();
  for (const p of paths) {
    const va = a.get(p)?.value;
    const vb = b.get(p)?.value;
    if (JSON.stringify(va) === JSON.stringify(vb)) continue;
    const path = (a.get(p) ?? b.get(p))!.path;
    // The planner's layout: datasets.<name>.sha256 and models.<name>.files.<relative file>.
    if (path[0] === 'datasets' && path.length === 3 && path[2] === 'sha256') {
      const file = stage?.datasets[path[1]!]?.path ?? `dataset ${path[1]}`;
      lines.push(va === undefined ? `dataset ${path[1]} added` : vb === undefined ? `dataset ${path[1]} no longer read` : `file ${file} changed`);
      continue;
    }
    if (path[0] === 'models' && path.length === 4 && path[2] === 'files') {
      const dir = stage?.models[path[1]!];
      // Labels: a file of an hf directory by name; `model`, `tokenizer`, `tokenizer_config` (the files `tokenizer:` names).
      const tokenizer = path[3] === 'tokenizer' || path[3] === 'tokenizer_config' ? stage?.modelRefs?.[path[1]!]?.tokenizer : undefined;
      const named = path[3] === 'model' || path[3] === 'tokenizer' || path[3] === 'tokenizer_config';
      const file = dir ? (named ? `${path[1]} ${path[3]} (${tokenizer ?? dir})` : `${dir}/${path[3]}`) : `${path[1]}/${path[3]}`;
      lines.push(va === undefined ? `file ${file} added` : vb === undefined ? `file ${file} no longer read` : `file ${file} changed`);
      continue;
    }
    const fileIdx = path.findIndex((s, i) => (FILES.has(s) && i < path.length - 1) || (i > 0 && looksLikePath(s) && s.startsWith('/')));
    const upIdx = path.findIndex((s) => UPSTREAM.has(s));
    if (fileIdx >= 0) {
      const file = FILES.has(path[fileIdx]!) ? path.slice(fileIdx + 1).join('.') : path[fileIdx]!;
      if (va === undefined) lines.push(`file ${file} added`);
      else if (vb === undefined) lines.push(`file ${file} no longer read`);
      else lines.push(`file ${file} changed`);
    } else if (upIdx >= 0 && upIdx < path.length - 1) {
      const id = path[upIdx + 1]!;
      if (seenUpstream.has(id)) continue;
      seenUpstream.add(id);
      if (va === undefined) lines.push(`upstream ${id} added`);
      else if (vb === undefined) lines.push(`upstream ${id} removed`);
      else lines.push(`upstream ${id} key changed`);
    } else {
      const shown = NUMERICS.has(path[0]!) && path.length > 1 ? path.slice(1) : path;
      const name = shown.join('.');
      if (va === undefined) lines.push(`${name} added (${show(vb)})`);
      else if (vb === undefined) lines.push(`${name} removed (was ${show(va)})`);
      else lines.push(`${name} ${show(va)} -> ${show(vb)}`);
    }
  }
  return lines;
}

/** Reasons a stage whose key is not in the store must run. */
export async function missReasons(stage: PlannedStage, store: Store): Promise<string[]> {
  const prev = await store.newestFor(stage.id);
  if (!prev) return ['never ran: no stored output for this stage'];
  const lines = diffKeyInputs(prev.keyInputs, stage.keyInputs, stage);
  if (lines.length > 0) return lines;
  return [`cache key changed (${prev.key.slice(0, 12)} -> ${stage.key.slice(0, 12)}) with equal key inputs`];
}
