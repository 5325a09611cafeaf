// Field rules the schema states only in prose: "give exactly one of these fields".
import { LopperError } from '../errors/lopper-error.js';
import type { DataPath } from './source.js';
import type { StageTemplate } from './resolve.js';
import type { Locator } from './schema-errors.js';

interface ExactlyOne { kind: string; at: string[]; fields: [string, string] }

const rules: ExactlyOne[] = [
  { kind: 'prune', at: [], fields: ['ratio', 'target_params'] },
  { kind: 'lora-finetune', at: ['train'], fields: ['epochs', 'max_steps'] },
  { kind: 'train', at: ['train'], fields: ['epochs', 'max_steps'] },
];

/** Errors of the rules, each with the id of the stage it concerns. */
export function fieldRuleErrors(stages: StageTemplate[], locate: Locator): { stageId: string; error: LopperError }[] {
  const errors: { stageId: string; error: LopperError }[] = [];
  for (const stage of stages) {
    for (const rule of rules.filter((r) => r.kind === stage.kind)) {
      const variant = stage.variants[0]!;
      let node: unknown = variant.params;
      for (const seg of rule.at) node = (node as Record<string, unknown> | undefined)?.[seg];
      const obj = (node ?? {}) as Record<string, unknown>;
      const base: DataPath = ['stages', stage.id, ...rule.at];
      const present = rule.fields.filter((f) => obj[f] !== undefined);
      const where = base.join('.');
      if (present.length === 2) {
        errors.push({ stageId: stage.id, error: new LopperError('LP1015', `${where} gives both "${rule.fields[0]}" and "${rule.fields[1]}"; give one`, {
          location: locate([...base, rule.fields[1]], 'key'),
        }) });
      } else if (present.length === 0) {
        errors.push({ stageId: stage.id, error: new LopperError('LP1016', `${where} needs "${rule.fields[0]}" or "${rule.fields[1]}"`, {
          location: locate(base, 'key'),
        }) });
      }
    }
  }
  return errors;
}
