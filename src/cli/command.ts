// A CLI command: a module under src/cli/commands/ exporting one of these; main.ts registers them from one list.
import type { Command } from 'commander';

export interface CliCommand {
  name: string;
  /** Adds the command (arguments, options from src/cli/options.ts, action) to the program. */
  register(program: Command): void;
}
