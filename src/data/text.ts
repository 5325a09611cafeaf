// Text records of a dataset, for calibration: `text` = every non-empty line of the file (a line holding only
// whitespace counts as empty; a trailing \r is dropped; the line is otherwise used as is), `jsonl` = the string field
// `field` (default "text") of every record.
import { readFile } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import type { DatasetSpec } from '../stages/types.js';
import { parseJsonl } from './jsonl.js';

/** Non-empty lines of a text file's content. */
export function textLines(content: string): string[] {
  const out: string[] = [];
  for (const raw of content.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() !== '') out.push(line);
  }
  return out;
}

/** The text records of a `text` or `jsonl` dataset, in file order. */
export async function readTextRecords(spec: DatasetSpec): Promise<string[]> {
  if (spec.format !== 'text' && spec.format !== 'jsonl') {
    throw new LopperError('LP4010', `dataset "${spec.name}" has format ${spec.format}; calibration reads text or jsonl datasets`, {
      hint: 'Use a dataset with format: text (one record per non-empty line) or jsonl (with `field`).',
    });
  }
  let content: string;
  try {
    content = await readFile(spec.path, 'utf8');
  } catch (cause) {
    throw new LopperError('LP4010', `cannot read dataset "${spec.name}" at ${spec.path}: ${(cause as Error).message}`, { cause, location: { file: spec.path } });
  }
  if (spec.format === 'text') return textLines(content);
  const field = typeof spec.options.field === 'string' ? spec.options.field : 'text';
  return parseJsonl(content, spec.path).map(({ line, value }) => {
    const v = (value as Record<string, unknown> | null)?.[field];
    if (typeof v !== 'string') {
      throw new LopperError('LP4010', `line ${line} of ${spec.path}: field "${field}" is not a string`, { location: { file: spec.path, line } });
    }
    return v;
  });
}
