// A recipe's YAML text parsed with source positions, and the lookup from a data path (['stages', 'pruned',
// 'ratio']) to the line and column of its key or value. Every user error about a recipe is located through here.
import { LineCounter, Parser, isMap, isPair, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node, Pair } from 'yaml';
import { LopperError } from '../errors/lopper-error.js';
import type { SourceLocation } from '../errors/lopper-error.js';

export type DataPath = readonly (string | number)[];

export interface RecipeSource {
  /** The path as the user gave it (printed in diagnostics). */
  file: string;
  text: string;
  doc: Document.Parsed;
  lineCounter: LineCounter;
}

export interface ParsedSource {
  source: RecipeSource;
  /** Plain data of the document; undefined when the YAML has syntax errors. */
  data: unknown;
  errors: LopperError[];
}

/** Parses YAML, collecting every syntax error and every duplicate key (at any depth) with its position. */
export function parseSource(text: string, file: string): ParsedSource {
  const lineCounter = new LineCounter();
  // uniqueKeys off: duplicates are found below with their full path, so a duplicate stage id gets its own code.
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const source: RecipeSource = { file, text, doc, lineCounter };
  const errors: LopperError[] = [];
  // After the first syntax error the parser's view of the text is unreliable and later errors are mostly echoes of
  // it (a stray `{` turns the rest of the line into "unexpected" tokens): report the first one only.
  const first = doc.errors[0];
  if (first) {
    const [start, end] = /missing closing ["']quote/i.test(first.message) ? unclosedQuote(text) ?? first.pos : first.pos;
    const location = rangeLocation(source, start, end);
    const line = text.split(/\r?\n/)[(location.line ?? 1) - 1] ?? '';
    const hint = /[^"']\$\{/.test(line) && /[{[]/.test(line.replace(/\$\{[^}]*\}/g, ''))
      ? 'inside { } or [ ], quote ${...}: ratio: "${vars.ratio}"'
      : first.code === 'TAB_AS_INDENT' ? 'YAML indents with spaces only' : undefined;
    const message = first.code === 'MULTIPLE_DOCS' ? 'a recipe is a single YAML document, but this file has several' : yamlMessage(first.message);
    errors.push(new LopperError('LP1001', message, {
      location, hint: first.code === 'MULTIPLE_DOCS' ? 'remove the "---" document separator' : hint,
    }));
    return { source, data: undefined, errors };
  }
  collectDuplicateKeys(source, doc.contents, [], errors);
  const data = errors.length > 0 ? undefined : doc.toJS({ maxAliasCount: 1000 });
  return { source, data, errors };
}

/**
 * Where the first quoted scalar without its closing quote starts. yaml reports the error where it gave up, at the
 * end of the file, but the user needs the line of the opening quote.
 */
function unclosedQuote(text: string): [number, number] | undefined {
  let found: [number, number] | undefined;
  const visit = (node: unknown): void => {
    if (found || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) { node.forEach(visit); return; }
    const token = node as { type?: string; offset?: number; source?: string };
    if ((token.type === 'double-quoted-scalar' || token.type === 'single-quoted-scalar') && typeof token.offset === 'number' && typeof token.source === 'string') {
      const closed = quotedScalarClosed(token.source);
      if (!closed) { found = [token.offset, token.offset + 1]; return; }
    }
    for (const value of Object.values(node)) visit(value);
  };
  for (const token of new Parser().parse(text)) visit(token);
  return found;
}

/** Whether a quoted scalar's source ends with its closing quote ('' escapes ' in single quotes, \\ escapes in double). */
function quotedScalarClosed(source: string): boolean {
  const quote = source[0];
  for (let i = 1; i < source.length; i++) {
    const c = source[i];
    if (quote === '"' && c === '\\') i++;
    else if (c === quote) {
      if (quote === "'" && source[i + 1] === "'") i++;
      else return i === source.length - 1;
    }
  }
  return false;
}

function yamlMessage(message: string): string {
  // yaml's messages end with " at line N, column M" (+ a frame when prettyErrors); the printer shows both itself.
  const first = message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  return first.charAt(0).toLowerCase() + first.slice(1);
}

function collectDuplicateKeys(source: RecipeSource, node: unknown, path: (string | number)[], errors: LopperError[]): void {
  if (isMap(node)) {
    const seen = new Map<string, Pair>();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const first = seen.get(key);
      if (first) {
        const range = (pair.key as Node | null)?.range;
        const firstLine = (first.key as Node | null)?.range ? source.lineCounter.linePos((first.key as Node).range![0]).line : undefined;
        const isStage = path.length === 1 && path[0] === 'stages';
        errors.push(new LopperError(isStage ? 'LP2004' : 'LP1002',
          isStage ? `duplicate stage id "${key}"` : `duplicate key "${key}"${path.length ? ` in ${formatPath(path)}` : ''}`,
          {
            location: range ? rangeLocation(source, range[0], range[1]) : { file: source.file },
            hint: firstLine !== undefined ? `"${key}" is first defined on line ${firstLine}; YAML keeps only one of them` : undefined,
          }));
      } else {
        seen.set(key, pair);
      }
      collectDuplicateKeys(source, pair.value, [...path, key], errors);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => collectDuplicateKeys(source, item, [...path, i], errors));
  }
}

export function rangeLocation(source: RecipeSource, start: number, end: number): SourceLocation {
  const a = source.lineCounter.linePos(start);
  const b = source.lineCounter.linePos(Math.max(start, end));
  const endColumn = b.line === a.line && b.col > a.col ? b.col : undefined;
  return { file: source.file, line: a.line, column: a.col, ...(endColumn !== undefined ? { endColumn } : {}) };
}

interface Found { node: Node | null; pair?: Pair; depth: number }

function walk(source: RecipeSource, path: DataPath): Found {
  let node: unknown = source.doc.contents;
  let pair: Pair | undefined;
  let depth = 0;
  for (const seg of path) {
    if (isMap(node)) {
      const p = node.items.find((it) => isPair(it) && (isScalar(it.key) ? String(it.key.value) : String(it.key)) === String(seg));
      if (!p) break;
      pair = p as Pair;
      node = p.value;
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      pair = undefined;
      node = node.items[seg];
    } else {
      break;
    }
    depth++;
  }
  return { node: (node as Node | null) ?? null, pair, depth };
}

/**
 * Location of the value at `path` (`at: 'key'`: of its key). A path that only partly exists in the text (a default
 * or an override filled it in) locates the deepest part that does: the key of the mapping that lacks the rest.
 */
export function locate(source: RecipeSource, path: DataPath, at: 'key' | 'value' = 'value'): SourceLocation {
  const found = walk(source, path);
  const complete = found.depth === path.length;
  const useKey = at === 'key' || !complete || !found.node;
  const target = useKey && found.pair && found.depth > 0 ? (found.pair.key as Node | null) : found.node;
  if (!target?.range) {
    if (found.node?.range) return rangeLocation(source, found.node.range[0], found.node.range[0]);
    return { file: source.file, line: 1, column: 1 };
  }
  const [start, valueEnd] = target.range;
  // A block map or sequence spans many lines: point at its first character only.
  const end = isScalar(target) ? valueEnd : start;
  return rangeLocation(source, start, end);
}

/** Whether `path` exists in the YAML text (false for values filled in by defaults, overrides or expansion). */
export function existsInSource(source: RecipeSource, path: DataPath): boolean {
  return walk(source, path).depth === path.length;
}

/** `stages.pruned.ratio`, `stages.report.models[1]`. */
export function formatPath(path: DataPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}
