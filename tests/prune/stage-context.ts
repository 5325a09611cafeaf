// A hand-built StageContext for running the pruning stages without the runner: each stage writes into its own temp
// directory, and references resolve to models on disk or to earlier stages' directories.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatasetSpec, StageContext, StageModule } from '../../src/stages/types.js';

export class StageBench {
  readonly root = mkdtempSync(join(tmpdir(), 'lopper-prune-'));
  readonly outputs = new Map<string, string>();
  readonly summaries = new Map<string, Record<string, unknown> | undefined>();
  constructor(readonly models: Record<string, string>, readonly datasets: Record<string, DatasetSpec>, readonly seed = 42) {}

  modelPath(ref: string): string {
    if (this.models[ref]) return this.models[ref]!;
    const out = this.outputs.get(ref);
    if (!out) throw new Error(`unknown model ${ref}`);
    return join(out, 'model');
  }

  async run(stage: StageModule, id: string, params: Record<string, unknown>): Promise<string> {
    const outDir = mkdtempSync(join(this.root, `${id}-`));
    const ctx: StageContext = {
      id, params: { kind: stage.kind, ...params }, seed: this.seed, recipeDir: this.root, outDir,
      modelPath: (ref) => this.modelPath(ref),
      model: (ref) => ({ path: this.modelPath(ref) }),
      stageDir: (ref) => {
        const d = this.outputs.get(ref);
        if (!d) throw new Error(`unknown stage ${ref}`);
        return d;
      },
      dataset: (name) => {
        const d = this.datasets[name];
        if (!d) throw new Error(`unknown dataset ${name}`);
        return d;
      },
      progress: { start() {}, tick() {}, note() {} },
      signal: new AbortController().signal,
      log() {},
    };
    const result = await stage.run(ctx);
    await result?.pending; // the model's files, still being written when run returns
    this.summaries.set(id, result?.summary);
    this.outputs.set(id, outDir);
    return outDir;
  }
}
