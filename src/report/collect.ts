// Reads what a report shows from the store: metrics.json of evaluate stages, importance.json of aggregate stages,
// plan.json of prune stages, train.jsonl of train and lora-finetune stages. A stage that did not finish, or whose
// output is gone, becomes a sentence in `missing`; a file that is there but unreadable is an error naming it (LP7011).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LopperError } from '../errors/lopper-error.js';
import { parseMetrics, type MetricsFile } from '../eval/report.js';
import type { ImportanceFile } from '../prune/stage-files.js';
import type { PlanJson } from '../stages/prune.js';
import type { TrainRecord } from '../train/trainer.js';
import type { ReportRunInfo, ReportSource, ReportStage } from './source.js';

export interface StageResults { stage: string; metrics: MetricsFile }
export interface StageImportance { stage: string; importance: string; mode: string; layers: ImportanceFile['layers']; hidden?: number[] }
export interface StagePlan { stage: string; importanceStage?: string; plan: PlanJson }
export interface StageTraining { stage: string; kind: string; log: TrainRecord[] }

export interface ReportData {
  title: string;
  storeDir?: string;
  run?: ReportRunInfo;
  results: StageResults[];
  importance: StageImportance[];
  plans: StagePlan[];
  training: StageTraining[];
  /** Sentences saying what the report lacks and why (a stage that failed, has not run, or was removed). */
  missing: string[];
}

/** The file each stage kind contributes. */
const reportFiles: Record<string, string> = {
  evaluate: 'metrics.json',
  aggregate: 'importance.json',
  prune: 'plan.json',
  train: 'train.jsonl',
  'lora-finetune': 'train.jsonl',
};

function unreadable(path: string, why: string, cause?: unknown): LopperError {
  return new LopperError('LP7011', `${path}: ${why}`, {
    location: { file: path }, cause,
    hint: 'The store entry is damaged: remove it (lopper cache gc, or delete the directory) and run the recipe again.',
  });
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unreadable(path, `cannot be read (${(e as Error).message})`, e);
  }
}

function parseJson(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw unreadable(path, `is not valid JSON (${(e as Error).message})`, e);
  }
}

function parseImportance(path: string, value: unknown): ImportanceFile {
  const v = value as Partial<ImportanceFile> | null;
  if (v?.format !== 'lopper.importance/1' || typeof v.layers !== 'object' || v.layers === null) throw unreadable(path, 'is not a lopper.importance/1 file');
  return v as ImportanceFile;
}

function parsePlan(path: string, value: unknown): PlanJson {
  const v = value as Partial<PlanJson> | null;
  if (typeof v?.params_before !== 'number' || typeof v.params_after !== 'number' || typeof v.layers !== 'object' || v.layers === null) {
    throw unreadable(path, 'lacks params_before, params_after or layers (not a prune plan.json)');
  }
  return v as PlanJson;
}

function parseTrainLog(path: string, text: string): TrainRecord[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((line, i) => {
    const r = parseJsonLine(path, i + 1, line) as Partial<Record<string, unknown>> | null;
    if (typeof r?.step !== 'number' || (typeof r.loss !== 'number' && typeof r.val_loss !== 'number')) {
      throw unreadable(`${path}:${i + 1}`, 'is not a training record ({"step", "loss"} or {"step", "val_loss"})');
    }
    return r as TrainRecord;
  });
}

function parseJsonLine(path: string, line: number, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw unreadable(`${path}:${line}`, `is not valid JSON (${(e as Error).message})`, e);
  }
}

function notFinished(s: ReportStage, file: string): string {
  if (s.status === 'will run') return `${s.id} (${s.kind}) has not run yet: no ${file}`;
  if (s.status === 'skipped') return `${s.id} (${s.kind}) was not selected for this run: no ${file}`;
  return `${s.id} (${s.kind}) ${s.status === 'not run' ? 'did not run (an upstream stage did not finish)' : s.status}${s.error ? `: ${s.error}` : ''} — no ${file}`;
}

export async function collectReport(source: ReportSource): Promise<ReportData> {
  const data: ReportData = {
    title: source.title, storeDir: source.storeDir, run: source.run,
    results: [], importance: [], plans: [], training: [], missing: [...(source.missing ?? [])],
  };
  for (const s of source.stages) {
    const file = reportFiles[s.kind];
    if (file === undefined) continue;
    if (s.status !== 'ran' && s.status !== 'cached') {
      data.missing.push(notFinished(s, file));
      continue;
    }
    const path = join(s.dir, file);
    const text = await readText(path);
    if (text === undefined) {
      data.missing.push(`${s.id} (${s.kind}): ${path} is not in the store (removed by lopper cache gc?)`);
      continue;
    }
    switch (s.kind) {
      case 'evaluate':
        // parseMetrics names the file in its error (LP5013) when the JSON is not a metrics file.
        data.results.push({ stage: s.id, metrics: parseMetrics(parseJson(path, text), path) });
        break;
      case 'aggregate': {
        const f = parseImportance(path, parseJson(path, text));
        data.importance.push({ stage: s.id, importance: f.taylor ? `${f.importance} (${f.taylor})` : f.importance, mode: f.mode, layers: f.layers, ...(f.hidden ? { hidden: f.hidden } : {}) });
        break;
      }
      case 'prune': {
        const importanceStage = s.dependsOn.find((d) => source.stages.some((x) => x.id === d && x.kind === 'aggregate'));
        data.plans.push({ stage: s.id, ...(importanceStage ? { importanceStage } : {}), plan: parsePlan(path, parseJson(path, text)) });
        break;
      }
      default:
        data.training.push({ stage: s.id, kind: s.kind, log: parseTrainLog(path, text) });
    }
  }
  return data;
}
