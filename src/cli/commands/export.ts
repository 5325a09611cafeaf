// lopper export FILE TARGET --format gguf|hf [--dtype f32|f16|bf16|q8_0] --out PATH: a model stage's output (run
// first if not stored) or a models: entry, as GGUF for llama.cpp or as a Hugging Face directory (run/export.ts).
import { Option, type Command } from 'commander';
import { EXPORT_DTYPES, exportModel, type ExportDtype, type ExportFormat } from '../../run/export.js';
import type { CliCommand } from '../command.js';
import { withOptions, type CommonOptions } from '../options.js';
import { action } from '../report.js';

interface ExportCliOptions extends CommonOptions { format: ExportFormat; dtype: ExportDtype; out: string; store?: string; json?: boolean }

export const exportCommandSpec: CliCommand = {
  name: 'export',
  register(program: Command) {
    const command = program.command('export')
      .description('write a model stage\'s output (or a models: entry) as GGUF for llama.cpp or as a Hugging Face directory')
      .argument('<file>', 'recipe file')
      .argument('<target>', 'a prune, lora-finetune or train stage id, or a models: entry name')
      .addOption(new Option('--format <format>', 'output format').choices(['gguf', 'hf']).default('gguf'))
      .addOption(new Option('--dtype <dtype>', 'tensor type (q8_0: GGUF only)').choices([...EXPORT_DTYPES]).default('f32'))
      .requiredOption('-o, --out <path>', 'output file (gguf) or directory (hf)')
      .option('--store <dir>', 'store directory')
      .option('--json', 'print the result as JSON on stdout');
    withOptions(command).action(action(async (file: string, target: string, o: ExportCliOptions) => {
      const result = await exportModel(file, target, {
        format: o.format, dtype: o.dtype, out: o.out, set: o.set, store: o.store, backend: o.backend,
        log: o.json ? undefined : (line) => process.stderr.write(`lopper: ${line}\n`),
      });
      if (o.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stderr.write(`lopper: wrote ${result.path}${result.architecture ? ` (${result.architecture})` : ''}\n`);
      return 0;
    }));
  },
};
