// evaluate: perplexity, zero-shot multiple choice, size and speed of every listed model; writes metrics.json
// (DESIGN.md shape), samples.jsonl (per question: scores and predictions) and report.html (src/report/stage-report.ts),
// and logs the comparison table, relative to the first model.
import { writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LopperError, StageCancelled } from '../errors/lopper-error.js';
import { acquireModel } from './model-ref.js';
import { countParameters } from '../model/config.js';
import type { Tokenizer } from '../model/types.js';
import { readMultipleChoice, type MultipleChoiceRecord } from '../data/jsonl.js';
import { perplexity, perplexityText, type PerplexityResult } from '../eval/perplexity.js';
import { perplexityIdsInThread } from '../eval/tokenize-thread.js';
import { predictions, zeroShot, type ZeroShotResult } from '../eval/zero-shot.js';
import { resolveTemplate, type Template, type TemplateSpec } from '../eval/templates.js';
import { forwardMacs, measureTokensPerSecond } from '../eval/speed.js';
import { metered, openMeter, usageJson } from '../backend/meter.js';
import { formatTable, type MetricsFile, type ModelMetrics, type TaskInfo } from '../eval/report.js';
import { writeStageReport } from '../report/stage-report.js';
import type { DatasetSpec, StageContext, StageModule } from './types.js';

interface EvaluateParams {
  models: string[];
  perplexity?: { datasets: string[]; seq_len: number; batch_size: number; limit?: number };
  zero_shot?: { tasks: { dataset: string; limit?: number }[]; batch_size: number };
  speed: { seq_len: number; batch_size: number; iterations: number };
  macs_seq_len: number;
}

const DEFAULT_ZERO_SHOT_BATCH = 16;

function positiveInt(value: unknown, fallback: number | undefined, field: string): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new LopperError('LP5011', `evaluate: ${field} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Reads ctx.params with the defaults of docs/recipe-fields.md (the planner normally fills them in already). */
export function evaluateParams(raw: Record<string, unknown>): EvaluateParams {
  const models = raw.models;
  if (!Array.isArray(models) || models.length === 0 || !models.every((m) => typeof m === 'string')) {
    throw new LopperError('LP5011', 'evaluate: models must be a non-empty list of model references');
  }
  const out: EvaluateParams = {
    models: models as string[],
    speed: { seq_len: 128, batch_size: 1, iterations: 5 },
    macs_seq_len: positiveInt(raw.macs_seq_len, 128, 'macs_seq_len'),
  };
  const ppl = raw.perplexity as Record<string, unknown> | undefined;
  if (ppl) {
    const datasets = ppl.datasets;
    if (!Array.isArray(datasets) || !datasets.every((d) => typeof d === 'string')) {
      throw new LopperError('LP5011', 'evaluate: perplexity.datasets must be a list of dataset names');
    }
    out.perplexity = {
      datasets: datasets as string[],
      seq_len: positiveInt(ppl.seq_len, 128, 'perplexity.seq_len'),
      batch_size: positiveInt(ppl.batch_size, 4, 'perplexity.batch_size'),
    };
    if (out.perplexity.seq_len < 2) throw new LopperError('LP5011', 'evaluate: perplexity.seq_len must be at least 2');
    if (ppl.limit !== undefined) out.perplexity.limit = positiveInt(ppl.limit, undefined, 'perplexity.limit');
  }
  const zs = raw.zero_shot as Record<string, unknown> | undefined;
  if (zs) {
    const tasks = zs.tasks;
    if (!Array.isArray(tasks)) throw new LopperError('LP5011', 'evaluate: zero_shot.tasks must be a list');
    out.zero_shot = {
      batch_size: positiveInt(zs.batch_size, DEFAULT_ZERO_SHOT_BATCH, 'zero_shot.batch_size'),
      tasks: tasks.map((t, i) => {
        const task = (typeof t === 'string' ? { dataset: t } : t) as Record<string, unknown>;
        if (typeof task?.dataset !== 'string') throw new LopperError('LP5011', `evaluate: zero_shot.tasks[${i}].dataset must be a dataset name`);
        const entry: { dataset: string; limit?: number } = { dataset: task.dataset };
        if (task.limit !== undefined) entry.limit = positiveInt(task.limit, undefined, `zero_shot.tasks[${i}].limit`);
        return entry;
      }),
    };
  }
  const speed = (raw.speed ?? {}) as Record<string, unknown>;
  out.speed = {
    seq_len: positiveInt(speed.seq_len, 128, 'speed.seq_len'),
    batch_size: positiveInt(speed.batch_size, 1, 'speed.batch_size'),
    iterations: positiveInt(speed.iterations, 5, 'speed.iterations'),
  };
  return out;
}

interface Task {
  name: string;
  spec: DatasetSpec;
  template: Template;
  templateName: string;
  records: MultipleChoiceRecord[];
}

function tokenizerKey(tokenizer: Tokenizer): string {
  const hash = createHash('sha256');
  for (const [name, bytes] of [...tokenizer.files()].sort(([a], [b]) => a.localeCompare(b))) hash.update(name).update('\0').update(bytes);
  return hash.digest('hex');
}

/** Per-question scores and predictions, one JSON line each (as lm-evaluation-harness's --log_samples). */
const SAMPLES_FILE = 'samples.jsonl';

function sampleLines(model: string, task: Task, result: ZeroShotResult): string[] {
  return task.records.map((record, q) => {
    const scores = result.scores[q]!;
    const predicted = predictions(scores, task.template.requests(record).map((r) => r.continuation));
    const line = { model, task: task.name, line: record.line, label: record.label, scores, acc: predicted.acc, ...(result.acc_norm === undefined ? {} : { acc_norm: predicted.acc_norm }) };
    return `${JSON.stringify(line)}\n`;
  });
}

function cancelled(ctx: StageContext, e: unknown): unknown {
  return ctx.signal.aborted ? new StageCancelled(ctx.id) : e;
}

async function loadTasks(ctx: StageContext, params: EvaluateParams): Promise<Task[]> {
  const tasks: Task[] = [];
  for (const { dataset, limit } of params.zero_shot?.tasks ?? []) {
    const spec = ctx.dataset(dataset);
    if (spec.format !== 'multiple-choice') {
      throw new LopperError('LP5007', `zero-shot task "${dataset}" has format ${spec.format}; zero_shot reads multiple-choice datasets`, {
        hint: 'Declare the dataset with `format: multiple-choice` and a `template:`.',
      });
    }
    const templateSpec = (spec.template ?? spec.options.template) as TemplateSpec | undefined;
    const template = resolveTemplate(templateSpec);
    const records = await readMultipleChoice(spec.path, limit);
    if (records.length === 0) {
      throw new LopperError('LP5011', `${spec.path}: zero-shot task "${dataset}" has no records to score (the file holds no non-empty line)`, {
        location: { file: spec.path }, hint: 'Each line of a multiple-choice dataset is one {"question", "choices", "label"} record.',
      });
    }
    // Render every record now, so a record the template cannot use fails before any model is loaded.
    for (const record of records) {
      try {
        template.requests(record);
      } catch (e) {
        if (!(e instanceof LopperError)) throw e;
        throw new LopperError(e.code, `${spec.path}:${record.line}: ${e.message}`, { location: { file: spec.path, line: record.line }, hint: e.hint });
      }
    }
    tasks.push({ name: dataset, spec, template, templateName: typeof templateSpec === 'string' ? templateSpec : template.name, records });
  }
  return tasks;
}

async function run(ctx: StageContext) {
  const params = evaluateParams(ctx.params);
  const pplSpecs = (params.perplexity?.datasets ?? []).map((name) => ctx.dataset(name));
  const pplTexts = await Promise.all(pplSpecs.map((spec) => perplexityText(spec)));
  const tasks = await loadTasks(ctx, params);
  const idsCache = new Map<string, Promise<Int32Array>>();

  const metrics: MetricsFile = { models: {}, baseline: params.models[0] };
  const samples: string[] = [];
  for (const ref of params.models) {
    const lease = await acquireModel(ctx, ref);
    const loaded = lease.resident;
    const tokenizer = loaded.tokenizer;
    if (!tokenizer) {
      lease.release();
      throw new LopperError('LP5009', `model "${ref}" (${loaded.source}) has no tokenizer; evaluate needs one`, {
        hint: 'Add tokenizer.json to the model directory, or `tokenizer:` to the models entry for a llama2.c .bin.',
      });
    }
    const model = loaded.model;
    const entry: ModelMetrics = {
      params: countParameters(loaded.config),
      macs: forwardMacs(loaded.config, params.macs_seq_len),
      perplexity: {},
      zero_shot: {},
      tokens_per_second: 0,
    };
    const details: Record<string, unknown> = { perplexity: {}, zero_shot: {} };
    const modelMeter = await openMeter();
    try {
      // The texts are tokenized on a worker thread while the zero-shot tasks run on the GPU.
      const pplIds = pplSpecs.map((spec, i) => {
        const key = `${tokenizerKey(tokenizer)}:${spec.name}`;
        let ids = idsCache.get(key);
        if (!ids) {
          ids = perplexityIdsInThread(tokenizer, pplTexts[i]!);
          idsCache.set(key, ids);
        }
        return ids;
      });
      for (const task of tasks) {
        const { value: result, usage } = await metered((): Promise<ZeroShotResult> => withProgress(ctx, `${ref} ${task.name} questions`, (onProgress) =>
          zeroShot(model, tokenizer, task.records, task.template, {
            batchSize: params.zero_shot!.batch_size,
            maxLength: loaded.config.maxPositionEmbeddings,
            signal: ctx.signal,
            onProgress,
          }),
        ));
        entry.zero_shot[task.name] = result.acc_norm === undefined ? { acc: result.acc } : { acc: result.acc, acc_norm: result.acc_norm };
        samples.push(...sampleLines(ref, task, result));
        (details.zero_shot as Record<string, unknown>)[task.name] = {
          questions: result.questions, prefix_mismatches: result.prefixMismatches, truncated_requests: result.truncated,
          shared_context: result.sharedContext, ...usageJson(usage),
        };
        ctx.log(
          `${ref}: ${task.name} acc ${result.acc.toFixed(4)}` +
            (result.acc_norm === undefined ? '' : ` acc_norm ${result.acc_norm.toFixed(4)}`) +
            ` (${result.questions} questions${result.prefixMismatches ? `, ${result.prefixMismatches} context/continuation token merges` : ''}` +
            `${result.truncated ? `, ${result.truncated} requests left-truncated to the ${loaded.config.maxPositionEmbeddings}-position context` : ''})`,
        );
      }
      for (const [i, spec] of pplSpecs.entries()) {
        const ppl = params.perplexity!;
        const ids = await pplIds[i]!;
        if (ppl.seq_len > loaded.config.maxPositionEmbeddings) {
          ctx.log(`warning: perplexity seq_len ${ppl.seq_len} exceeds ${ref}'s max_position_embeddings ${loaded.config.maxPositionEmbeddings}`);
        }
        const { value: result, usage } = await metered((): Promise<PerplexityResult> => withProgress(ctx, `${ref} ${spec.name} windows`, (onProgress) =>
          perplexity(model, ids!, { seqLen: ppl.seq_len, batchSize: ppl.batch_size, limit: ppl.limit, signal: ctx.signal, onProgress, source: spec }),
        ));
        entry.perplexity[spec.name] = result.perplexity;
        (details.perplexity as Record<string, unknown>)[spec.name] = {
          nll: result.nll, tokens: result.tokens, windows: result.windows, windows_available: result.windowsAvailable, ids: result.ids,
          ...usageJson(usage),
        };
        ctx.log(`${ref}: ${spec.name} perplexity ${result.perplexity.toFixed(4)} (${result.windows} windows of ${ppl.seq_len})`);
      }
      ctx.progress.note(`${ref}: measuring tokens/s`);
      ctx.signal.throwIfAborted();
      const { value: speed, usage } = await metered(() => measureTokensPerSecond(model, {
        seqLen: params.speed.seq_len, batchSize: params.speed.batch_size, iterations: params.speed.iterations, vocabSize: loaded.config.vocabSize,
      }));
      entry.tokens_per_second = speed.tokensPerSecond;
      // seconds: the timed passes; phase: with the warm-up pass and its shader compiles.
      details.speed = { tokens: speed.tokens, seconds: speed.seconds, phase: usageJson(usage) };
      details.usage = usageJson(modelMeter.stop());
    } catch (e) {
      modelMeter.stop();
      throw cancelled(ctx, e);
    } finally {
      lease.release();
    }
    entry.details = details;
    metrics.models[ref] = entry;
  }

  metrics.tasks = Object.fromEntries(
    tasks.map((t): [string, TaskInfo] => [t.name, { template: t.templateName, metric: t.template.reported, questions: t.records.length }]),
  );
  metrics.settings = {
    perplexity: params.perplexity ?? null,
    zero_shot: params.zero_shot ?? null,
    speed: params.speed,
    macs_seq_len: params.macs_seq_len,
    // tokens_per_second was measured on this tfjs backend.
    backend: tf.getBackend(),
  };
  await writeFile(join(ctx.outDir, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
  if (samples.length > 0) await writeFile(join(ctx.outDir, SAMPLES_FILE), samples.join(''));
  for (const line of formatTable(metrics).split('\n')) ctx.log(line);
  return {
    // report.html: built once the upstream stages it draws from are stored (their models may still be writing).
    pending: writeStageReport(ctx),
    summary: {
      models: Object.fromEntries(
        Object.entries(metrics.models).map(([name, m]) => [name, { params: m.params, perplexity: m.perplexity, zero_shot: m.zero_shot, tokens_per_second: m.tokens_per_second }]),
      ),
    },
  };
}

/** Runs one measured phase with progress: start(phase, total) on the first report, tick by the increments after. */
async function withProgress<T>(ctx: StageContext, phase: string, body: (onProgress: (done: number, total: number) => void) => Promise<T>): Promise<T> {
  let last = -1;
  return body((done, total) => {
    if (last < 0) {
      ctx.progress.start(phase, total);
      last = 0;
    }
    if (done > last) ctx.progress.tick(done - last);
    last = done;
  });
}

const stage: StageModule = {
  kind: 'evaluate',
  // 1: DESIGN.md perplexity and zero-shot protocols, metrics.json with params, macs, tokens/s.
  // 2: choices packed after their shared prefix (scores equal to float32 rounding); samples.jsonl.
  // 3: report.html (src/report/) beside metrics.json.
  version: '3',
  outputKind: 'metrics',
  run,
  readsResidentModels: true,
};
export default stage;
