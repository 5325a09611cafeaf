// aggregate stage: per-member channel scores → one score per prunable unit (src/prune/aggregate.ts), written to
// importance.json per layer and group kind. `reduce` applies to every importance kind. LLM-Pruner itself reduces
// l1/l2 scores with `mean` (the MagnitudeImportance default; --grouping_strategy only reaches taylor) — for local
// pruning mean and sum rank units identically, so `reduce: sum` reproduces its l1/l2 kept sets as well.
import { join } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import { readSafetensors } from '../model/safetensors.js';
import { unitImportance, type Normalize, type Reduce } from '../prune/aggregate.js';
import { enumParam, stringParam } from '../prune/stage-params.js';
import {
  IMPORTANCE_FILE, SCORES_FILE, SCORES_TENSORS, groupFromJson, readStageJson, writeJsonAtomic, type ImportanceFile, type ScoresFile,
} from '../prune/stage-files.js';
import type { StageContext, StageModule } from './types.js';

const stage: StageModule = {
  kind: 'aggregate',
  version: '1',
  outputKind: 'importance',
  async run(ctx: StageContext) {
    const p = ctx.params;
    const scoresRef = stringParam(p, 'scores', ctx.id);
    const reduce = enumParam<Reduce>(p, 'reduce', ['sum', 'mean', 'max', 'prod', 'first', 'last'], 'sum', ctx.id);
    const normalize = enumParam<Normalize>(p, 'normalize', ['none', 'mean', 'max', 'sum', 'gaussian'], 'none', ctx.id);
    const dir = ctx.stageDir(scoresRef);
    const sf = await readStageJson<ScoresFile>(dir, SCORES_FILE, 'lopper.scores/1', scoresRef);
    const wanted = new Set(Object.values(sf.tensors).flatMap((m) => Object.values(m)));
    const tensors = await readSafetensors(join(dir, SCORES_TENSORS), { filter: (n) => wanted.has(n) });
    const out: ImportanceFile = {
      format: 'lopper.importance/1', model: sf.model, mode: sf.mode, importance: sf.importance, taylor: sf.taylor,
      reduce, normalize, layers: {}, groups: sf.groups,
    };
    for (const gj of sf.groups) {
      const g = groupFromJson(gj);
      const memberScores = g.members.map((m) => {
        const name = sf.tensors[g.id]?.[m.role];
        if (name === undefined) return null;
        const t = tensors.get(name);
        if (!t) throw new LopperError('LP4007', `${join(dir, SCORES_TENSORS)}: tensor "${name}" is missing`);
        return Float64Array.from(t.data);
      });
      const units = Array.from(unitImportance(g, memberScores, reduce, normalize));
      if (g.kind === 'hidden') out.hidden = units;
      else if (g.kind === 'layer') g.layerIds!.forEach((l, u) => { (out.layers[String(l)] ??= {}).layer = [units[u]!]; });
      else (out.layers[String(g.layer)] ??= {})[g.kind] = units;
    }
    await writeJsonAtomic(ctx.outDir, IMPORTANCE_FILE, out);
    return { summary: { groups: sf.groups.length, reduce, normalize } };
  },
};
export default stage;
