// Model residency: the one owner of loaded models in a process. A stage asks for a model by its content key (the
// planner's key of the `models:` entry's files, or of the upstream stage that produced it) and gets the resident
// copy; the first request loads it, later ones share it. Models stay on the device between stages while the
// resident total fits the memory budget; when a load or a derived model needs room, the least recently used model
// that no stage holds is disposed. Stages never dispose a resident model themselves: they release their lease.
import { totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { LlamaModel } from './llama.js';
import type { LlamaConfig, ModelFormat, Tokenizer } from './types.js';
import type { HfDtype } from './dtype.js';

/** What a stage gets for a model reference: everything the loader learned, plus the device copy. */
export interface ResidentModel {
  readonly key: string;
  readonly config: LlamaConfig;
  readonly tokenizer: Tokenizer | null;
  readonly format: ModelFormat;
  /** Absolute path the model was read from (a derived model: the directory its stage wrote). */
  readonly source: string;
  /** The dtype of the checkpoint's weights on disk (outputs are written in it by default). */
  readonly dtype: HfDtype;
  readonly model: LlamaModel;
  /** Device bytes of the model's variables. */
  readonly bytes: number;
}

export type ResidentFields = Omit<ResidentModel, 'key' | 'bytes'>;

export interface ModelLease {
  readonly resident: ResidentModel;
  /** Gives the model back to the room (idempotent). It stays resident until the budget needs its memory. */
  release(): void;
}

interface Entry {
  resident: ResidentModel;
  holders: number;
  lastUsed: number;
}

export interface LoadRecord {
  key: string;
  source: string;
  bytes: number;
  ms: number;
  /** 'loaded' from disk, or 'derived' (adopted from a stage that computed it, e.g. prune's gather). */
  how: 'loaded' | 'derived';
}

export interface ResidencyOptions {
  /** Device bytes the resident models may take together (models held by a stage are never evicted); a function is
   *  asked each time, so a default can depend on the backend that is active by then. */
  budgetBytes: number | (() => number);
}

export class ModelResidency {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<ResidentModel>>();
  private clock = 0;
  /** Every load and adoption since creation, in order (run records, tests, benchmarks). */
  readonly history: LoadRecord[] = [];

  constructor(private readonly options: ResidencyOptions) {}

  get budgetBytes(): number {
    const b = this.options.budgetBytes;
    return typeof b === 'function' ? b() : b;
  }

  /** Device bytes of the models resident now. */
  residentBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.resident.bytes;
    return n;
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** The resident model under `key`, loading it with `load` when absent (concurrent requests share one load). */
  async acquire(key: string, load: () => Promise<ResidentFields>, expectedBytes = 0): Promise<ModelLease> {
    const entry = this.entries.get(key);
    if (entry) return this.lease(entry);
    let pending = this.loading.get(key);
    if (!pending) {
      pending = (async () => {
        this.makeRoom(expectedBytes);
        const t0 = performance.now();
        const fields = await load();
        const resident = this.insert(key, fields);
        this.history.push({ key, source: fields.source, bytes: resident.bytes, ms: Math.round(performance.now() - t0), how: 'loaded' });
        return resident;
      })().finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    await pending;
    return this.lease(this.entries.get(key)!);
  }

  /**
   * Makes a model a stage computed (a pruned model gathered from its base, a merged LoRA model) resident under the
   * key of the stage's output, so downstream stages need not read what the stage wrote. The room owns it from now on.
   */
  adopt(key: string, fields: ResidentFields): ModelLease {
    const old = this.entries.get(key);
    if (old && old.holders === 0) this.dispose(key);
    else if (old) {
      // A concurrent holder still uses the old copy: keep it, drop the newcomer.
      fields.model.dispose();
      return this.lease(old);
    }
    this.makeRoom(0);
    const resident = this.insert(key, fields);
    this.history.push({ key, source: fields.source, bytes: resident.bytes, ms: 0, how: 'derived' });
    const lease = this.lease(this.entries.get(key)!);
    this.makeRoom(0);
    return lease;
  }

  /** Disposes every model no stage holds (after a device error, at the end of a one-shot run). */
  clear(): void {
    for (const [key, e] of [...this.entries]) if (e.holders === 0) this.dispose(key);
  }

  private insert(key: string, fields: ResidentFields): ResidentModel {
    const resident: ResidentModel = { ...fields, key, bytes: variableBytes(fields.model) };
    this.entries.set(key, { resident, holders: 0, lastUsed: ++this.clock });
    return resident;
  }

  private lease(entry: Entry): ModelLease {
    entry.holders++;
    entry.lastUsed = ++this.clock;
    let released = false;
    return {
      resident: entry.resident,
      release: () => {
        if (released) return;
        released = true;
        entry.holders--;
        entry.lastUsed = ++this.clock;
        this.makeRoom(0);
      },
    };
  }

  /** Evicts unheld models, least recently used first, until `incoming` more bytes fit the budget. */
  private makeRoom(incoming: number): void {
    const unheld = [...this.entries].filter(([, e]) => e.holders === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [key] of unheld) {
      if (this.residentBytes() + incoming <= this.budgetBytes) return;
      this.dispose(key);
    }
  }

  private dispose(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    e.resident.model.dispose();
  }
}

function variableBytes(model: LlamaModel): number {
  let n = 0;
  for (const v of model.params.values()) n += v.size * 4;
  return n;
}

const GIB = 1024 ** 3;

/**
 * The default budget: LOPPER_MODEL_MEMORY_GB when set; on WebGPU (which reports no memory size) 64 GiB, enough for
 * a 7B model and its pruned copy in float32 beside the activations and gradients of a stage; elsewhere the models
 * live in host memory, so a quarter of it.
 */
export function defaultBudgetBytes(): number {
  const env = process.env.LOPPER_MODEL_MEMORY_GB;
  if (env !== undefined && env !== '' && Number.isFinite(Number(env)) && Number(env) >= 0) return Number(env) * GIB;
  return tf.getBackend() === 'webgpu' ? 64 * GIB : Math.floor(totalmem() / 4);
}

let shared: ModelResidency | undefined;

/** The process's residency: every run in this process (watch mode's reruns included) shares it. */
export function sharedResidency(): ModelResidency {
  shared ??= new ModelResidency({ budgetBytes: defaultBudgetBytes });
  return shared;
}
