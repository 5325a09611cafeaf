// aggregate stage: per-member channel scores → one score per prunable unit (src/prune/aggregate.ts), written to
// importance.json per layer and group kind. `reduce` applies to every importance kind. LLM-Pruner itself reduces
// l1/l2 scores with `mean` (the MagnitudeImportance default; --grouping_strategy only reaches taylor) — for local
// pruning mean and sum rank units identically, so `reduce: sum` reproduces its l1/l2 kept sets as well.
// flap scores are pooled by mean (FLAP averages a head's standardized channel scores), every other kind by sum;
// flap's mean inputs travel on into compensation.safetensors for the prune stage's bias compensation.
import { join } from 'node:path';
import { rename } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import { readSafetensors, writeSafetensors, type WritableTensor } from '../model/safetensors.js';
import { unitImportance, type Normalize, type Pool, type Reduce } from '../prune/aggregate.js';
import { enumParam, stringParam } from '../prune/stage-params.js';
import {
  COMPENSATION_TENSORS, IMPORTANCE_FILE, SCORES_FILE, SCORES_TENSORS, groupFromJson, readStageJson, writeJsonAtomic, type ImportanceFile, type ScoresFile,
} from '../prune/stage-files.js';
import type { StageContext, StageModule } from './types.js';

const stage: StageModule = {
  kind: 'aggregate',
  // 2: flap pooled by mean, compensation.safetensors; importance.json records `pool`.
  version: '2',
  outputKind: 'importance',
  async run(ctx: StageContext) {
    const p = ctx.params;
    const scoresRef = stringParam(p, 'scores', ctx.id);
    const reduce = enumParam<Reduce>(p, 'reduce', ['sum', 'mean', 'max', 'prod', 'first', 'last'], 'sum', ctx.id);
    const normalize = enumParam<Normalize>(p, 'normalize', ['none', 'mean', 'max', 'sum', 'gaussian'], 'none', ctx.id);
    const dir = ctx.stageDir(scoresRef);
    const sf = await readStageJson<ScoresFile>(dir, SCORES_FILE, 'lopper.scores/1', scoresRef);
    const means = sf.mean_inputs ?? {};
    const wanted = new Set([...Object.values(sf.tensors).flatMap((m) => Object.values(m)), ...Object.values(means)]);
    const tensors = await readSafetensors(join(dir, SCORES_TENSORS), { filter: (n) => wanted.has(n) });
    const pool: Pool = sf.importance === 'flap' ? 'mean' : 'sum';
    const out: ImportanceFile = {
      format: 'lopper.importance/1', model: sf.model, mode: sf.mode, importance: sf.importance, taylor: sf.taylor,
      ...(sf.flap !== undefined ? { flap: sf.flap } : {}), reduce, normalize, pool, layers: {}, groups: sf.groups,
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
      const units = Array.from(unitImportance(g, memberScores, reduce, normalize, pool));
      if (g.kind === 'hidden') out.hidden = units;
      else if (g.kind === 'layer') g.layerIds!.forEach((l, u) => { (out.layers[String(l)] ??= {}).layer = [units[u]!]; });
      else (out.layers[String(g.layer)] ??= {})[g.kind] = units;
    }
    if (Object.keys(means).length > 0) {
      const comp = new Map<string, WritableTensor>();
      for (const [id, name] of Object.entries(means)) {
        const t = tensors.get(name);
        if (!t) throw new LopperError('LP4007', `${join(dir, SCORES_TENSORS)}: tensor "${name}" is missing`);
        comp.set(id, { shape: t.shape, data: t.data });
      }
      const tmp = join(ctx.outDir, `.${COMPENSATION_TENSORS}.tmp-${process.pid}`);
      await writeSafetensors(tmp, comp, { format: 'lopper.compensation/1' });
      await rename(tmp, join(ctx.outDir, COMPENSATION_TENSORS));
      out.compensation = Object.keys(means);
    }
    await writeJsonAtomic(ctx.outDir, IMPORTANCE_FILE, out);
    return { summary: { groups: sf.groups.length, reduce, normalize, pool } };
  },
};
export default stage;
