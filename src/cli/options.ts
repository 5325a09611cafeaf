// Every CLI option in one table: flags, description and parser. Commands pick theirs by name, so `--help` and
// behaviour agree everywhere. `--set` and `--backend` are on every command.
import { Option } from 'commander';
import type { Command } from 'commander';
import type { Backend } from '../plan/types.js';

const backends: Backend[] = ['auto', 'webgpu', 'tensorflow', 'wasm', 'cpu'];

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export const optionTable = {
  set: () => new Option('-s, --set <key=value>', 'override a recipe value, read as YAML (repeatable): vars.ratio=0.5, stages.pruned.ratio=0.5')
    .argParser(collect).default([] as string[], 'none'),
  backend: () => new Option('-b, --backend <name>', 'tfjs backend: numerics and cache keys depend on it (overrides runtime.backend)')
    .choices(backends),
  json: () => new Option('--json', 'print machine-readable JSON on stdout'),
  format: () => new Option('-f, --format <format>', 'graph format').choices(['mermaid', 'dot']).default('mermaid'),
  quiet: () => new Option('-q, --quiet', 'print errors only (no warnings, no summary)'),
} satisfies Record<string, () => Option>;

export type OptionName = keyof typeof optionTable;

/** Options every command takes. */
export const commonOptions: OptionName[] = ['set', 'backend'];

export interface CommonOptions {
  set: string[];
  backend?: Backend;
}

/** Adds the common options and the named ones, in table order. */
export function withOptions(command: Command, names: OptionName[] = []): Command {
  for (const name of [...commonOptions, ...names.filter((n) => !commonOptions.includes(n))]) command.addOption(optionTable[name]());
  return command;
}
