// The zero-shot requests lopper scores, as token ids, for the PyTorch side of the evaluation benchmark
// (bench/eval/torch_eval.py): the same templates, tokenization and left truncation (src/eval/zero-shot.ts), one JSON
// line per question: {task, line, label, choices: [{ids, start, length, chars}]}.
//   usage: node --import tsx bench/eval/requests.ts MODEL_DIR OUT.jsonl TASK=FILE[:LIMIT] ...
import { writeFileSync } from 'node:fs';
import { loadTokenizer } from '../../src/model/index.js';
import { readHfConfigFile } from '../../src/model/hf.js';
import { readMultipleChoice } from '../../src/data/jsonl.js';
import { resolveTemplate } from '../../src/eval/templates.js';
import { characterLength, encodeRequest } from '../../src/eval/zero-shot.js';

const [modelDir, outPath, ...tasks] = process.argv.slice(2);
if (!modelDir || !outPath || tasks.length === 0) throw new Error('usage: requests.ts MODEL_DIR OUT.jsonl TASK=FILE[:LIMIT] ...');
const tokenizer = await loadTokenizer(modelDir);
const maxLength = (await readHfConfigFile(modelDir)).maxPositionEmbeddings;
const lines: string[] = [];
for (const spec of tasks) {
  const [task, rest] = spec.split('=') as [string, string];
  const [file, limit] = rest.split(':') as [string, string | undefined];
  const template = resolveTemplate(task);
  for (const record of await readMultipleChoice(file, limit ? Number(limit) : Infinity)) {
    const choices = template.requests(record).map((r) => {
      const e = encodeRequest(tokenizer, r, maxLength);
      return { ids: e.ids, start: e.start, length: e.length, chars: characterLength(r.continuation) };
    });
    lines.push(JSON.stringify({ task, line: record.line, label: record.label, choices }));
  }
}
writeFileSync(outPath, lines.join('\n') + '\n');
console.error(`${lines.length} questions → ${outPath}`);
