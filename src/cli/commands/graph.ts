// `lopper graph FILE --format mermaid|dot`: the stage graph (after matrix expansion) with its models and datasets.
import type { Command } from 'commander';
import { loadRecipe } from '../../dsl/resolve.js';
import { checkRecipe } from '../../plan/plan.js';
import { planGraph } from '../../plan/graph-format.js';
import type { GraphFormat } from '../../plan/graph-format.js';
import type { CliCommand } from '../command.js';
import { withOptions } from '../options.js';
import type { CommonOptions } from '../options.js';
import { action } from '../report.js';

interface GraphOptions extends CommonOptions { format: GraphFormat }

export const graphCommand: CliCommand = {
  name: 'graph',
  register(program: Command) {
    withOptions(program.command('graph'), ['format'])
      .description('print the stage graph as Mermaid (renders in GitHub markdown) or Graphviz dot')
      .argument('<file>', 'recipe file')
      .action(action(async (file: string, opts: GraphOptions) => {
        const checked = checkRecipe(await loadRecipe(file, { set: opts.set }), { missingFiles: 'warning' });
        process.stdout.write(planGraph({ name: checked.resolved.recipe.name, stages: checked.instances }, opts.format));
      }));
  },
};
