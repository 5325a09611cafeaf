// JSONL readers for evaluation data. Errors name the file, the 1-based line and, for JSON syntax errors, the column,
// so the CLI can print `file:line:col` and a code frame.
import { readFile } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';

export interface JsonlLine {
  /** 1-based line number in the file. */
  line: number;
  value: unknown;
}

/** One `{"question","choices","label"}` record (DESIGN.md zero-shot format); `label` is 0-based. */
export interface MultipleChoiceRecord {
  id?: string;
  question: string;
  choices: string[];
  label: number;
  /** 1-based line of the record in its file. */
  line: number;
  /** BoolQ's passage, when the record carries one (the boolq template then uses lm-evaluation-harness's prompt). */
  passage?: string;
  /** HellaSwag's raw fields, when the record is in the dataset's own shape (the hellaswag template preprocesses them). */
  hellaswag?: { activityLabel: string; ctxA: string; ctxB: string };
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    throw new LopperError('LP5012', `cannot read dataset file ${path}: ${(cause as Error).message}`, {
      location: { file: path },
      cause,
      hint: 'Check the dataset path in the recipe (relative paths resolve against the recipe directory).',
    });
  }
}

/** Parses JSONL text: one JSON value per non-blank line. `limit` stops after that many values. */
export function parseJsonl(text: string, file: string, limit = Infinity): JsonlLine[] {
  const out: JsonlLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && out.length < limit; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    try {
      out.push({ line: i + 1, value: JSON.parse(raw) });
    } catch (cause) {
      const message = (cause as Error).message;
      const position = /position (\d+)/.exec(message);
      throw new LopperError('LP5001', `line ${i + 1} of ${file} is not valid JSON: ${message}`, {
        location: { file, line: i + 1, column: position ? Number(position[1]) + 1 : undefined },
        cause,
        hint: 'Each line of a JSONL file must hold one complete JSON value.',
      });
    }
  }
  return out;
}

export async function readJsonl(path: string, limit = Infinity): Promise<JsonlLine[]> {
  return parseJsonl(await readText(path), path, limit);
}

function invalid(file: string, line: number, what: string): LopperError {
  return new LopperError('LP5002', `line ${line} of ${file}: ${what}`, {
    location: { file, line, column: 1 },
    hint: 'A multiple-choice record is {"question": string, "choices": [string, ...], "label": 0-based index}.',
  });
}

/** Checks one parsed line against the multiple-choice record shape. */
export function multipleChoiceRecord(entry: JsonlLine, file: string): MultipleChoiceRecord {
  const { line, value } = entry;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(file, line, 'the record is not a JSON object');
  const record = value as Record<string, unknown>;
  if (record.question === undefined && Array.isArray(record.endings)) return hellaswagRecord(record, file, line);
  if (typeof record.question !== 'string') throw invalid(file, line, '"question" must be a string');
  const choices = record.choices;
  if (!Array.isArray(choices) || choices.length < 2) throw invalid(file, line, '"choices" must be an array of at least 2 strings');
  choices.forEach((c, k) => {
    if (typeof c !== 'string') throw invalid(file, line, `"choices"[${k}] must be a string`);
  });
  const label = record.label;
  if (typeof label !== 'number' || !Number.isInteger(label) || label < 0 || label >= choices.length) {
    throw invalid(file, line, `"label" must be an integer index into "choices" (0..${choices.length - 1}), got ${JSON.stringify(label)}`);
  }
  const out: MultipleChoiceRecord = { question: record.question, choices: choices as string[], label, line };
  if (record.id !== undefined) out.id = String(record.id);
  if (record.passage !== undefined) {
    if (typeof record.passage !== 'string') throw invalid(file, line, '"passage" must be a string');
    out.passage = record.passage;
  }
  return out;
}

/** A record in HellaSwag's own shape: {activity_label, ctx_a, ctx_b, endings, label} (label may be a string). */
function hellaswagRecord(record: Record<string, unknown>, file: string, line: number): MultipleChoiceRecord {
  for (const key of ['activity_label', 'ctx_a', 'ctx_b'] as const) {
    if (typeof record[key] !== 'string') throw invalid(file, line, `a HellaSwag record needs "${key}" as a string`);
  }
  const endings = record.endings as unknown[];
  if (endings.length < 2 || !endings.every((e) => typeof e === 'string')) throw invalid(file, line, '"endings" must be an array of at least 2 strings');
  const label = typeof record.label === 'string' && /^\d+$/.test(record.label) ? Number(record.label) : record.label;
  if (typeof label !== 'number' || !Number.isInteger(label) || label < 0 || label >= endings.length) {
    throw invalid(file, line, `"label" must be an index into "endings" (0..${endings.length - 1}), got ${JSON.stringify(record.label)}`);
  }
  const [activityLabel, ctxA, ctxB] = [record.activity_label, record.ctx_a, record.ctx_b] as string[];
  const out: MultipleChoiceRecord = {
    question: `${activityLabel}: ${ctxA} ${ctxB}`, choices: endings as string[], label, line, hellaswag: { activityLabel: activityLabel!, ctxA: ctxA!, ctxB: ctxB! },
  };
  if (record.ind !== undefined || record.id !== undefined) out.id = String(record.id ?? record.ind);
  return out;
}

/** Reads the first `limit` records of a multiple-choice JSONL file. */
export async function readMultipleChoice(path: string, limit = Infinity): Promise<MultipleChoiceRecord[]> {
  return (await readJsonl(path, limit)).map((entry) => multipleChoiceRecord(entry, path));
}
