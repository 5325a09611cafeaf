// group stage: which weights move together (src/prune/groups.ts), computed from the model's shapes alone and
// written to groups.json with the model reference, for the score stage.
import { buildGroups, type GroupMode } from '../prune/groups.js';
import { enumParam, nestedRange, rangeParam, stringParam } from '../prune/stage-params.js';
import { GROUPS_FILE, groupToJson, writeJsonAtomic, type GroupsFile } from '../prune/stage-files.js';
import { modelConfig } from './model-ref.js';
import type { StageContext, StageModule } from './types.js';

const stage: StageModule = {
  kind: 'group',
  version: '1',
  outputKind: 'groups',
  async run(ctx: StageContext) {
    const p = ctx.params;
    const model = stringParam(p, 'model', ctx.id);
    const mode = enumParam<GroupMode>(p, 'mode', ['block', 'channel', 'layer'], 'block', ctx.id);
    const attention = mode === 'block' ? nestedRange(p, 'attention', ctx.id) : undefined;
    const mlp = mode === 'block' ? nestedRange(p, 'mlp', ctx.id) : undefined;
    const layers = mode === 'block' ? undefined : rangeParam(p.layers, '`layers`', ctx.id);
    const config = await modelConfig(ctx, model);
    const groups = buildGroups(config, { mode, attention, mlp, layers });
    const file: GroupsFile = {
      format: 'lopper.groups/1', model, mode,
      attention_layers: attention ?? null, mlp_layers: mlp ?? null, layers: layers ?? null,
      groups: groups.map(groupToJson),
    };
    await writeJsonAtomic(ctx.outDir, GROUPS_FILE, file);
    const units: Record<string, number> = {};
    for (const g of groups) units[g.kind] = (units[g.kind] ?? 0) + g.units;
    ctx.log(`${groups.length} groups (${Object.entries(units).map(([k, n]) => `${n} ${k} units`).join(', ')})`);
    return { summary: { groups: groups.length, units } };
  },
};
export default stage;
