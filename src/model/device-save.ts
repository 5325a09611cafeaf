// Writing a device-resident model as a Hugging Face directory in a chosen dtype, one tensor at a time: for a
// 16-bit dtype the whole model is first rounded on the device (the resident copy then equals the file, bit for bit)
// and each tensor read back as 16-bit; float32 tensors are read back as they are. The host holds a bounded window
// of staged tensors (backend/readback.ts).
import * as tf from '@tensorflow/tfjs-core';
import { pack16, unpack16 } from '../backend/pack16.js';
import { stageReads, type StagedRead } from '../backend/readback.js';
import { StageCancelled } from '../errors/lopper-error.js';
import { halfKindOf, type HfDtype } from './dtype.js';
import { saveModel, type TensorSource } from './hf.js';
import type { LlamaModel } from './llama.js';
import type { Raw16Tensor } from './raw-tensor.js';
import type { HostTensor, LlamaConfig, Tokenizer } from './types.js';
import { parameterShapes } from './config.js';

export interface DeviceModelToSave {
  config: LlamaConfig;
  model: LlamaModel;
  tokenizer: Tokenizer | null;
  dtype: HfDtype;
}

/** Rounds every parameter of `m` to its 16-bit dtype in place (device work only; nothing for float32). */
export function roundDeviceModel(m: DeviceModelToSave): void {
  const kind = halfKindOf(m.dtype);
  if (!kind) return;
  for (const v of m.model.params.values()) {
    tf.tidy(() => { v.assign(tf.reshape(unpack16(pack16(v, kind), v.size, kind), v.shape)); });
  }
}

/**
 * Host bytes staged for the writer at once (LOPPER_WRITE_AHEAD_GB, default 3): the first tensors up to this size
 * are copied off the device when the save starts, before a concurrent stage queues GPU work, and later ones in
 * batches of a quarter of it as the writer frees room, so each batch waits behind at most one queued batch of
 * the other stage. Staged bytes are mapped memory the writer reads in place, freed once written.
 */
function writeAheadBytes(): number {
  const env = Number(process.env.LOPPER_WRITE_AHEAD_GB);
  return (process.env.LOPPER_WRITE_AHEAD_GB !== undefined && Number.isFinite(env) && env > 0 ? env : 3) * 1024 ** 3;
}

/** The model's parameters as the writer asks for them, in parameter order, staged ahead of it (see above). */
class DeviceSource implements TensorSource {
  readonly shapes: Map<string, number[]>;
  private readonly order: string[];
  private readonly kind: 'bf16' | 'f16' | null;
  private readonly staged = new Map<string, StagedRead>();
  private next = 0;
  private stagedBytes = 0;

  constructor(private readonly m: DeviceModelToSave, private readonly signal?: AbortSignal) {
    this.kind = halfKindOf(m.dtype);
    this.shapes = parameterShapes(m.config);
    this.order = [...this.shapes.keys()];
    this.refill(writeAheadBytes());
  }

  async read(name: string): Promise<Raw16Tensor & { release(): void } | HostTensor & { release(): void }> {
    if (this.signal?.aborted) throw new StageCancelled('save');
    if (!this.staged.has(name)) {
      if (this.order[this.next] !== name) throw new Error(`DeviceSource: "${name}" asked out of order`);
      this.refill(1);
    }
    const read = this.staged.get(name)!;
    this.staged.delete(name);
    const shape = this.shapes.get(name)!;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      read.release();
      this.stagedBytes -= read.byteLength;
      const room = writeAheadBytes() - this.stagedBytes;
      if (room >= writeAheadBytes() / 4) this.refill(room);
    };
    let bytes: Uint8Array;
    try {
      bytes = await read.bytes();
    } catch (e) {
      release();
      throw e;
    }
    if (this.kind) return { dtype: this.kind === 'bf16' ? 'BF16' : 'F16', shape, bytes, release };
    return { shape, data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), release };
  }

  /** Frees whatever is staged and not yet handed out (after a failed or cancelled save). */
  close(): void {
    for (const read of this.staged.values()) read.release();
    this.staged.clear();
    this.stagedBytes = 0;
    this.next = this.order.length;
  }

  /** Stages the next parameters, at least one, up to `bytes`, with one submit. */
  private refill(bytes: number): void {
    const names: string[] = [];
    let total = 0;
    while (this.next < this.order.length) {
      const size = this.bytesOf(this.order[this.next]!);
      if (names.length > 0 && total + size > bytes) break;
      names.push(this.order[this.next++]!);
      total += size;
    }
    if (names.length === 0) return;
    const parts: { tensor: tf.Tensor; bytes: number }[] = [];
    const groups = names.map((name) => this.m.model.variablesOf(name).map((v) => {
      parts.push({ tensor: this.kind ? pack16(v, this.kind) : v, bytes: v.size * (this.kind ? 2 : 4) });
      return parts.length - 1;
    }));
    try {
      const reads = stageReads(parts, groups);
      names.forEach((name, i) => this.staged.set(name, reads[i]!));
      this.stagedBytes += total;
    } finally {
      if (this.kind) for (const p of parts) p.tensor.dispose();
    }
  }

  private bytesOf(name: string): number {
    return this.shapes.get(name)!.reduce((a, d) => a * d, 1) * (this.kind ? 2 : 4);
  }
}

/**
 * Writes `m` into `dir` (created) in `m.dtype`. 16-bit dtypes round the device copy in place first, so it equals the
 * file; with `rounded`, the caller did that already (roundDeviceModel) and may compute on the model while this writes.
 */
export async function saveDeviceModel(dir: string, m: DeviceModelToSave, opts: { signal?: AbortSignal; rounded?: boolean } = {}): Promise<void> {
  if (!opts.rounded) roundDeviceModel(m);
  const source = new DeviceSource(m, opts.signal);
  try {
    await saveModel(dir, { config: m.config, weights: source, tokenizer: m.tokenizer }, { dtype: m.dtype });
  } finally {
    source.close();
  }
}
