// Safetensors writer. The header is laid out from names, dtypes and shapes alone, so tensors can arrive one at a
// time from an async source (a GPU-resident model downloads one tensor while the previous one is written).
// Float32 data is converted to F16/BF16 chunk by chunk (round to nearest even); 16-bit data already in the
// file's dtype is written unchanged. A few positional writes stay in flight, bounded in bytes.
import { open, type FileHandle } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import { float32ToHalf, halfToFloat32, type FloatDtype } from './dtype.js';
import { WriteWindow } from './io-window.js';
import { numelOf, type Raw16Tensor } from './raw-tensor.js';

/**
 * Float32Array is written as `dtype` (default: the writer's floatDtype, F32); Int32Array as I32. `release` is
 * called once every write of the tensor's data has ended (the data may be a view of memory the source frees then).
 */
export type WritableTensor =
  | ({ shape: number[]; data: Float32Array | Int32Array; dtype?: FloatDtype } | Raw16Tensor) & { release?: () => void };

/** One header entry: what the file will hold, decided before any data is produced. */
export interface TensorLayout {
  name: string;
  dtype: FloatDtype | 'I32';
  shape: number[];
}

export interface WriteSafetensorsOptions {
  /** File dtype of Float32Array tensors that do not name one (default F32). */
  floatDtype?: FloatDtype;
  /** Bytes of issued, unfinished writes (default 256 MiB). */
  maxBytesInFlight?: number;
  /** Concurrent fh.write calls (default 4). */
  maxWritesInFlight?: number;
}

const BYTES: Record<TensorLayout['dtype'], number> = { F32: 4, F16: 2, BF16: 2, I32: 4 };
/** Elements converted per chunk: 16 MiB of float32 in, 8 MiB of 16-bit out. */
const CONVERT_CHUNK = 4 * 1024 * 1024;
/** Pass-through data is written in pieces of this size so several writes of one tensor overlap. */
const WRITE_PIECE_BYTES = 16 * 1024 * 1024;

function fail(message: string): never {
  throw new LopperError('LP3016', message);
}

/** Writes a map of tensors in map order (header padded with spaces to 8 bytes, as the reference implementation). */
export async function writeSafetensors(path: string, tensors: Map<string, WritableTensor>, metadata: Record<string, string> = {}, opts: WriteSafetensorsOptions = {}): Promise<void> {
  const layout: TensorLayout[] = [];
  for (const [name, t] of tensors) {
    const dtype: TensorLayout['dtype'] = 'bytes' in t ? t.dtype : t.data instanceof Int32Array ? 'I32' : t.dtype ?? opts.floatDtype ?? 'F32';
    layout.push({ name, dtype, shape: t.shape });
    checkData(path, { name, dtype, shape: t.shape }, t);
  }
  await writeSafetensorsFrom(path, layout, (name) => tensors.get(name)!, metadata, opts);
}

/**
 * Writes the tensors of `layout` in its order, asking `read` for each one's data just before writing it
 * (awaited one at a time, so host memory holds the tensor being written plus the write window).
 */
export async function writeSafetensorsFrom(
  path: string, layout: TensorLayout[], read: (name: string) => WritableTensor | Promise<WritableTensor>,
  metadata: Record<string, string> = {}, opts: WriteSafetensorsOptions = {},
): Promise<void> {
  const header = headerBytes(layout, metadata);
  let fh: FileHandle;
  try {
    fh = await open(path, 'w');
  } catch (e) {
    fail(`${path}: cannot create (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const window = new WriteWindow(opts.maxWritesInFlight ?? 4, opts.maxBytesInFlight ?? 256 * 1024 * 1024);
  try {
    let position = 0;
    const put = async (bytes: Uint8Array): Promise<{ ended: Promise<unknown> }> => {
      const at = position;
      position += bytes.byteLength;
      return window.add(bytes.byteLength, () => writeFully(fh, path, bytes, at));
    };
    await put(header);
    for (const entry of layout) {
      const data = await read(entry.name);
      const writes: Promise<unknown>[] = [];
      try {
        checkData(path, entry, data);
        for (const piece of encode(entry.dtype, data)) writes.push((await put(piece)).ended);
      } finally {
        const release = data.release;
        if (release) void Promise.all(writes).then(release);
      }
    }
    await window.drain();
  } catch (e) {
    await window.settle();
    throw e;
  } finally {
    await fh.close();
  }
}

/** 8-byte length, then the JSON header padded with spaces to a multiple of 8 bytes. */
function headerBytes(layout: TensorLayout[], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of layout) {
    const bytes = numelOf(t.shape) * BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const raw = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(8 + Math.ceil(raw.byteLength / 8) * 8).fill(0x20);
  new DataView(padded.buffer).setBigUint64(0, BigInt(padded.byteLength - 8), true);
  padded.set(raw, 8);
  return padded;
}

function checkData(path: string, entry: TensorLayout, t: WritableTensor): void {
  const numel = numelOf(entry.shape);
  const what = `${path}: tensor "${entry.name}"`;
  if (t.shape.length !== entry.shape.length || t.shape.some((d, i) => d !== entry.shape[i])) {
    fail(`${what} has shape ${JSON.stringify(t.shape)} but the header lays out ${JSON.stringify(entry.shape)}`);
  }
  const values = 'bytes' in t ? t.bytes.byteLength / 2 : t.data.length;
  if (values !== numel) fail(`${what} has shape ${JSON.stringify(t.shape)} (${numel} values) but ${values} values`);
  const isInt = !('bytes' in t) && t.data instanceof Int32Array;
  if (isInt !== (entry.dtype === 'I32')) fail(`${what}: ${isInt ? 'Int32Array' : 'float'} data cannot be written as ${entry.dtype}`);
}

/** The file bytes of one tensor, produced lazily so that only the pieces in the write window exist at once. */
function* encode(dtype: TensorLayout['dtype'], t: WritableTensor): Generator<Uint8Array> {
  if ('bytes' in t && t.dtype === dtype) {
    yield* pieces(t.bytes);
  } else if ('bytes' in t) {
    const halves = aligned16(t.bytes);
    for (let i = 0; i < halves.length; i += CONVERT_CHUNK) {
      const f32 = halfToFloat32(t.dtype, halves.subarray(i, i + CONVERT_CHUNK));
      yield dtype === 'F32' ? bytesOf(f32) : bytesOf(float32ToHalf(dtype as 'F16' | 'BF16', f32));
    }
  } else if (dtype === 'F32' || dtype === 'I32') {
    yield* pieces(bytesOf(t.data));
  } else {
    const data = t.data as Float32Array;
    for (let i = 0; i < data.length; i += CONVERT_CHUNK) yield bytesOf(float32ToHalf(dtype, data.subarray(i, i + CONVERT_CHUNK)));
  }
}

function* pieces(bytes: Uint8Array): Generator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += WRITE_PIECE_BYTES) yield bytes.subarray(at, at + WRITE_PIECE_BYTES);
}

function bytesOf(a: Float32Array | Int32Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function aligned16(bytes: Uint8Array): Uint16Array {
  const src = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  return new Uint16Array(src.buffer, src.byteOffset, src.byteLength / 2);
}

/** Positional write of all of `bytes` (a write may be short; one call may not exceed 2 GiB). */
async function writeFully(fh: FileHandle, path: string, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    let written: number;
    try {
      ({ bytesWritten: written } = await fh.write(bytes, done, Math.min(bytes.byteLength - done, 1 << 30), position + done));
    } catch (e) {
      fail(`${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (written === 0) fail(`${path}: write made no progress at offset ${position + done}`);
    done += written;
  }
}
