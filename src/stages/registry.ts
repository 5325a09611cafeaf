// Stage kinds by name: the runner looks a stage's module up here and nowhere else.
import type { StageModule } from './types.js';
import group from './group.js';
import score from './score.js';
import aggregate from './aggregate.js';
import prune from './prune.js';
import evaluate from './evaluate.js';
import loraFinetune from './lora-finetune.js';
import train from './train.js';

const modules: StageModule[] = [group, score, aggregate, prune, evaluate, loraFinetune, train];
export const stageRegistry: ReadonlyMap<string, StageModule> = new Map(modules.map((m) => [m.kind, m]));

export function stageModule(kind: string): StageModule {
  const module = stageRegistry.get(kind);
  if (!module) throw new Error(`no stage module for kind "${kind}"`);
  return module;
}
