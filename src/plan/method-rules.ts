// Combinations of pruning-method options that span stages (the schema sees one stage at a time): an importance kind
// scores the groups of one group mode only, FLAP's adaptive scope ranks heads and MLP channels, and bias
// compensation needs the mean inputs only `importance: flap` records. Each error points at the offending value.
import { LopperError } from '../errors/lopper-error.js';
import type { SourceLocation } from '../errors/lopper-error.js';
import type { StageTemplate, StageVariant } from '../dsl/resolve.js';
import type { DataPath } from '../dsl/source.js';

type Params = Record<string, unknown>;
type Locate = (stageId: string, variant: StageVariant, path: DataPath, at?: 'key' | 'value') => SourceLocation;

/** The group mode each importance kind scores; kinds not listed score every mode. */
const modeOfImportance: Readonly<Record<string, { mode: string; what: string }>> = {
  wanda: { mode: 'block', what: 'attention heads and MLP channels from o_proj / down_proj inputs' },
  flap: { mode: 'block', what: 'attention heads and MLP channels from o_proj / down_proj inputs' },
  block_influence: { mode: 'layer', what: 'whole decoder layers' },
};

export function methodRuleErrors(templates: ReadonlyMap<string, StageTemplate>, locate: Locate): LopperError[] {
  const paramsOf = (ref: unknown, kind: string): Params | undefined => {
    const t = typeof ref === 'string' ? templates.get(ref) : undefined;
    return t?.kind === kind ? (t.variants[0]?.params as unknown as Params) : undefined;
  };
  const modeOf = (score: Params | undefined) => {
    const g = paramsOf(score?.groups, 'group');
    return g ? String(g.mode ?? 'block') : undefined;
  };
  const errors: LopperError[] = [];
  for (const t of templates.values()) {
    for (const v of t.variants) {
      const p = v.params as unknown as Params;
      if (t.kind === 'score') {
        const rule = modeOfImportance[String(p.importance)];
        const mode = modeOf(p);
        if (rule && mode !== undefined && mode !== rule.mode) {
          errors.push(new LopperError('LP2013', `importance: ${String(p.importance)} scores ${rule.what}, but group stage "${String(p.groups)}" has mode: ${mode}`, {
            location: locate(t.id, v, ['importance']), hint: `use a group stage with mode: ${rule.mode}`,
          }));
        }
      }
      if (t.kind === 'prune') {
        const score = paramsOf(paramsOf(p.importance, 'aggregate')?.scores, 'score');
        const mode = modeOf(score);
        if (p.scope === 'adaptive' && mode !== undefined && mode !== 'block') {
          errors.push(new LopperError('LP2013', `scope: adaptive ranks attention heads and MLP channels by their parameters (FLAP AL-AM); the groups behind "${String(p.importance)}" have mode: ${mode}`, {
            location: locate(t.id, v, ['scope']), hint: 'use scope: local or global, or group with mode: block',
          }));
        }
        if (p.bias_compensation === true && score && score.importance !== 'flap') {
          errors.push(new LopperError('LP2013', `bias_compensation needs the mean inputs that importance: flap records; the scores behind "${String(p.importance)}" use importance: ${String(score.importance ?? 'taylor')}`, {
            location: locate(t.id, v, ['bias_compensation']), hint: 'use importance: flap in the score stage, or drop bias_compensation',
          }));
        }
      }
    }
  }
  return errors;
}
