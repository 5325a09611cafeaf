// `lopper validate FILE...`: every problem of each recipe at once; missing model/dataset files are warnings.
import type { Command } from 'commander';
import { validate } from '../../plan/api.js';
import type { CliCommand } from '../command.js';
import { withOptions } from '../options.js';
import type { CommonOptions } from '../options.js';
import { action, EXIT_OK, EXIT_USER_ERROR, printErrors, printWarnings } from '../report.js';
import type { LopperError } from '../../errors/lopper-error.js';

interface ValidateOptions extends CommonOptions { json?: boolean; quiet?: boolean }

function errorJson(e: LopperError): Record<string, unknown> {
  return { code: e.code, message: e.message, file: e.location?.file, line: e.location?.line, column: e.location?.column, hint: e.hint };
}

export const validateCommand: CliCommand = {
  name: 'validate',
  register(program: Command) {
    withOptions(program.command('validate'), ['json', 'quiet'])
      .description('check recipes (YAML, schema, references, cycles, layer ranges, files) without running anything')
      .argument('<files...>', 'recipe files')
      .action(action(async (files: string[], opts: ValidateOptions) => {
        let failed = false;
        const results = [];
        for (const file of files) {
          const r = await validate(file, { set: opts.set });
          failed ||= !r.ok;
          results.push(r);
          if (opts.json) continue;
          printErrors(r.errors);
          if (!opts.quiet) printWarnings(r.warnings);
          if (r.ok && !opts.quiet) {
            const w = r.warnings.length ? `, ${r.warnings.length} warning${r.warnings.length === 1 ? '' : 's'}` : '';
            process.stdout.write(`${file}: ok (${r.stageCount} stage${r.stageCount === 1 ? '' : 's'}${w})\n`);
          } else if (!r.ok) {
            process.stderr.write(`${file}: ${r.errors.length} error${r.errors.length === 1 ? '' : 's'}\n`);
          }
        }
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({
            files: results.map((r) => ({ file: r.file, ok: r.ok, stages: r.stageCount, errors: r.errors.map(errorJson), warnings: r.warnings.map(errorJson) })),
          }, null, 2)}\n`);
        }
        return failed ? EXIT_USER_ERROR : EXIT_OK;
      }));
  },
};
