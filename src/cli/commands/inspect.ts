// `lopper inspect CONFIG_OR_MODEL_DIR [--ratio R | --target-params N] [--attention-layers a,b] [--mlp-layers a,b]`:
// per-layer widths and parameter counts before (and after) local pruning, from config.json alone.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { inspectConfig, readConfigAt, type InspectReport } from '../../prune/inspect.js';
import type { GroupMode, LayerRange } from '../../prune/groups.js';
import type { CliCommand } from '../command.js';
import { action, EXIT_OK } from '../report.js';

interface InspectOpts {
  ratio?: number;
  targetParams?: number;
  attentionLayers?: LayerRange;
  mlpLayers?: LayerRange;
  layers?: LayerRange;
  mode: GroupMode;
  roundTo?: number;
  json?: boolean;
}

function range(value: string): LayerRange {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(value);
  if (!m) throw new InvalidArgumentError('expected START,END (end-exclusive), e.g. 4,30');
  return [Number(m[1]), Number(m[2])];
}

function number(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}

const fmt = (n: number) => n.toLocaleString('en-US');

function table(r: InspectReport): string {
  const lines: string[] = [];
  const a = r.after;
  const head = ['layer', 'heads', 'kv', 'mlp', 'params'];
  const rows: string[][] = [a ? [...head, '→ heads', 'kv', 'mlp', 'params'] : head];
  r.before.layers.forEach((l, i) => {
    const row = [String(l.layer), String(l.heads), String(l.kvHeads), String(l.intermediate), fmt(l.params)];
    const b = a && a.numLayers === r.before.numLayers ? a.layers[i] : undefined;
    if (b) row.push(`→ ${b.heads}`, String(b.kvHeads), String(b.intermediate), fmt(b.params));
    rows.push(row);
  });
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)));
  for (const row of rows) lines.push(row.map((cell, c) => cell.padStart(widths[c]!)).join('  '));
  lines.push('');
  lines.push(`hidden size ${r.before.hiddenSize}${a && a.hiddenSize !== r.before.hiddenSize ? ` → ${a.hiddenSize}` : ''}, ${r.before.numLayers} layers${a && a.numLayers !== r.before.numLayers ? ` → ${a.numLayers}` : ''}`);
  if (a) {
    lines.push(`parameters ${fmt(r.before.params)} → ${fmt(a.params)} (${((100 * a.params) / r.before.params).toFixed(2)}%) at ratio ${r.ratio}`);
  } else {
    lines.push(`parameters ${fmt(r.before.params)}`);
  }
  return lines.join('\n');
}

export const inspectCommand: CliCommand = {
  name: 'inspect',
  register(program: Command) {
    program.command('inspect')
      .description('per-layer widths and parameter counts of a config.json, before and after local pruning (no weights read)')
      .argument('<config>', 'config.json, or a model directory holding one')
      .addOption(new Option('--ratio <r>', 'pruning ratio in [0, 1) applied to every chosen group').argParser(number))
      .addOption(new Option('--target-params <n>', 'solve for the smallest ratio reaching this many parameters').argParser(number).conflicts('ratio'))
      .addOption(new Option('--mode <mode>', 'group mode').choices(['block', 'channel', 'layer']).default('block'))
      .addOption(new Option('--attention-layers <start,end>', 'block mode: attention layers pruned (end-exclusive)').argParser(range))
      .addOption(new Option('--mlp-layers <start,end>', 'block mode: MLP layers pruned (end-exclusive)').argParser(range))
      .addOption(new Option('--layers <start,end>', 'channel/layer mode: layer range (end-exclusive)').argParser(range))
      .addOption(new Option('--round-to <n>', 'round kept MLP/hidden channel counts up to a multiple').argParser(number))
      .addOption(new Option('--json', 'print machine-readable JSON on stdout'))
      .action(action(async (path: string, o: InspectOpts) => {
        const { config, file } = await readConfigAt(path);
        const pruning = o.ratio !== undefined || o.targetParams !== undefined;
        const report = inspectConfig(config, file, pruning ? {
          spec: { mode: o.mode, attention: o.attentionLayers, mlp: o.mlpLayers, layers: o.layers },
          ratio: o.ratio, targetParams: o.targetParams, roundTo: o.roundTo,
        } : undefined);
        process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${file}\n${table(report)}\n`);
        return EXIT_OK;
      }));
  },
};
