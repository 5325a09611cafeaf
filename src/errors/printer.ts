// The one printer for user errors: `file:line:col error[CODE]: message`, a code frame with the offending text
// underlined, and the hint. Positions and frames come from the error's location, never from its message.
import { readFileSync } from 'node:fs';
import { LopperError } from './lopper-error.js';

export type Severity = 'error' | 'warning';

export interface PrintOptions {
  severity?: Severity;
  /** Source text of a file by its printed path; default: read the file from disk (if it exists). */
  sourceOf?: (file: string) => string | undefined;
  /** Lines of context above the offending line. */
  context?: number;
  /** false: the first line and the hint only. */
  frame?: boolean;
}

function readSource(file: string): string | undefined {
  try { return readFileSync(file, 'utf8'); } catch { return undefined; }
}

/** `file:line:col` (or fewer parts when the location has fewer). */
export function locationPrefix(e: LopperError): string {
  const l = e.location;
  if (!l) return '';
  if (l.line === undefined) return l.file;
  return l.column === undefined ? `${l.file}:${l.line}` : `${l.file}:${l.line}:${l.column}`;
}

export function formatError(e: LopperError, options: PrintOptions = {}): string {
  const severity = options.severity ?? 'error';
  const prefix = locationPrefix(e);
  const lines = [`${prefix ? `${prefix} ` : ''}${severity}[${e.code}]: ${e.message}`];
  const l = e.location;
  if (l?.line !== undefined && options.frame !== false) {
    const text = (options.sourceOf ?? readSource)(l.file);
    if (text !== undefined) {
      const src = text.split(/\r?\n/);
      const context = options.context ?? 1;
      const first = Math.max(1, l.line - context);
      const width = String(l.line).length;
      lines.push(`${' '.repeat(width)} |`);
      for (let n = first; n <= l.line && n <= src.length; n++) {
        lines.push(`${String(n).padStart(width)} | ${src[n - 1]!.replace(/\t/g, ' ')}`);
      }
      if (l.column !== undefined && l.line <= src.length) {
        const line = src[l.line - 1]!;
        const end = l.endColumn ?? l.column + 1;
        const length = Math.max(1, Math.min(end, line.length + 1) - l.column);
        lines.push(`${' '.repeat(width)} | ${' '.repeat(l.column - 1)}${'^'.repeat(length)}`);
      }
    }
  }
  if (e.hint) lines.push(`  = hint: ${e.hint}`);
  return lines.join('\n');
}

export function formatErrors(errors: readonly LopperError[], options: PrintOptions = {}): string {
  return errors.map((e) => formatError(e, options)).join('\n\n');
}
