// Alpaca-style instruction data, as LLM-Pruner's post_training.py (from tloen/alpaca-lora) prepares it: the
// `alpaca` prompt template (templates/alpaca.json), tokenized with BOS, truncated to cutoff_len, no EOS
// (add_eos_token=False), and with train_on_inputs=False every prompt token labelled −100 (here: target 0).
import type { TrainExample } from './packing.js';

export interface AlpacaRecord {
  instruction: string;
  input?: string;
  output: string;
}

const PROMPT_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n';
const PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:\n';

/** Prompter.generate_prompt: the prompt for `instruction`/`input`, followed by `output` when given. */
export function alpacaPrompt(instruction: string, input?: string, output?: string): string {
  const template = input ? PROMPT_INPUT.replace('{input}', () => input) : PROMPT_NO_INPUT;
  const prompt = template.replace('{instruction}', () => instruction);
  return output === undefined ? prompt : prompt + output;
}

/** Parses alpaca JSONL (one `{instruction, input?, output}` object per line) or a JSON array of them. */
export function parseAlpaca(text: string, source: string): AlpacaRecord[] {
  const trimmed = text.trim();
  const raw: unknown[] = trimmed.startsWith('[')
    ? (JSON.parse(trimmed) as unknown[])
    : trimmed.split('\n').filter((l) => l.trim() !== '').map((line, i) => {
        try { return JSON.parse(line) as unknown; } catch (e) { throw new Error(`${source}:${i + 1}: not JSON (${(e as Error).message})`); }
      });
  return raw.map((r, i) => {
    const rec = r as Record<string, unknown>;
    if (typeof rec.instruction !== 'string' || typeof rec.output !== 'string') {
      throw new Error(`${source}: record ${i + 1} needs string fields "instruction" and "output"`);
    }
    return { instruction: rec.instruction, input: typeof rec.input === 'string' ? rec.input : '', output: rec.output };
  });
}

/** One training example: BOS + ids of prompt+output, cut to `cutoffLen`; prompt positions masked unless
 * `trainOnInputs`. The prompt length is that of BOS + encode(prompt) tokenized alone, as alpaca-lora does. */
export function alpacaExample(
  record: AlpacaRecord, encode: (s: string) => number[], bosId: number, cutoffLen: number, trainOnInputs: boolean,
): TrainExample {
  const ids = [bosId, ...encode(alpacaPrompt(record.instruction, record.input, record.output))].slice(0, cutoffLen);
  const targets = new Uint8Array(ids.length).fill(1);
  if (!trainOnInputs) {
    const promptLen = 1 + encode(alpacaPrompt(record.instruction, record.input)).length;
    targets.fill(0, 0, Math.min(promptLen, ids.length));
  }
  return { ids, targets };
}
