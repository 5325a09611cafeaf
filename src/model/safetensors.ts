// Safetensors reader/writer (https://github.com/huggingface/safetensors#format): 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}, then the
// data. The reader validates the whole header against the file size before allocating anything (a lying header
// cannot trigger a giant allocation), then streams the tensors in file order with a few reads in flight and a
// bounded number of bytes read ahead: `streamSafetensors` hands out raw bytes in the file's dtype, and
// `readSafetensors` converts each tensor to float32/int32 as it arrives. The writer lives in safetensors-write.ts.
import { open, type FileHandle } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';
import { ConcurrencyLimit } from './io-window.js';
import { rawToFloat32, rawToInt32, type RawTensor } from './raw-tensor.js';

export type { RawTensor } from './raw-tensor.js';
export { writeSafetensors, writeSafetensorsFrom, type WritableTensor, type WriteSafetensorsOptions, type TensorLayout } from './safetensors-write.js';

export interface SafetensorsTensor {
  /** The dtype stored in the file (`F32`, `F16`, `BF16`, `I32`, `I64`, ...); data is always F32 or I32 in memory. */
  dtype: string;
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  metadata: Record<string, string>;
  tensors: Map<string, SafetensorsEntry>;
}

export const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
};
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
const INT_DTYPES = new Set(['I32', 'I64']);
/** A header bigger than this is refused before it is read (real headers of 400-shard 405B models are < 1 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Default bound on bytes read ahead of the consumer. */
const DEFAULT_BYTES_IN_FLIGHT = 256 * 1024 * 1024;
/** Default number of concurrent fh.read calls. */
const DEFAULT_READS_IN_FLIGHT = 4;
/** Large tensors are read in pieces of this size so that several reads of one tensor overlap. */
const READ_PIECE_BYTES = 16 * 1024 * 1024;

function fail(code: string, message: string, hint?: string): never {
  throw new LopperError(code, message, hint === undefined ? {} : { hint });
}

async function readExactly(fh: FileHandle, path: string, buf: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    // One read() may not exceed 2 GiB in Node; 1 GiB steps.
    const { bytesRead } = await fh.read(buf, done, Math.min(buf.byteLength - done, 1 << 30), position + done);
    if (bytesRead === 0) {
      fail('LP3004', `${path}: file ends while reading ${what} (wanted ${buf.byteLength} bytes at offset ${position}, got ${done})`,
        'The file is truncated; download or write it again.');
    }
    done += bytesRead;
  }
}

/** Parses and validates the header of an open safetensors file without reading any tensor data. */
async function readHeaderFrom(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const size = (await fh.stat()).size;
  if (size < 8) fail('LP3004', `${path}: ${size} bytes, too short to be a safetensors file (needs an 8-byte header length)`);
  const lenBuf = new Uint8Array(8);
  await readExactly(fh, path, lenBuf, 0, 'the header length');
  const headerLen = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    fail('LP3005', `${path}: header length ${headerLen} bytes is implausible (limit ${MAX_HEADER_BYTES}); this is not a valid safetensors file`);
  }
  const n = Number(headerLen);
  if (8 + n > size) {
    fail('LP3004', `${path}: header length says ${n} bytes but the file has only ${size - 8} after the length field`,
      'The file is truncated or not a safetensors file.');
  }
  const headerBytes = new Uint8Array(n);
  await readExactly(fh, path, headerBytes, 8, 'the header');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    fail('LP3005', `${path}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('LP3005', `${path}: header is not a JSON object`);
  const dataStart = 8 + n;
  const dataSize = size - dataStart;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value === 'object' && value !== null) metadata = value as Record<string, string>;
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof v !== 'object' || v === null || typeof v.dtype !== 'string' || !Array.isArray(v.shape) || !Array.isArray(v.data_offsets)) {
      fail('LP3005', `${path}: header entry for tensor "${name}" lacks dtype, shape or data_offsets`);
    }
    const dtype = v.dtype;
    const bytes = DTYPE_BYTES[dtype];
    if (bytes === undefined) fail('LP3007', `${path}: tensor "${name}" has unknown dtype "${dtype}"`);
    const shape = v.shape as unknown[];
    if (!shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail('LP3005', `${path}: tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offsets = v.data_offsets as unknown[];
    if (offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      fail('LP3006', `${path}: tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [b, e] = offsets as [number, number];
    const numel = (shape as number[]).reduce((a, d) => a * d, 1);
    if (!Number.isSafeInteger(numel * bytes) || e - b !== numel * bytes) {
      fail('LP3006', `${path}: tensor "${name}" (${dtype} ${JSON.stringify(shape)}) needs ${numel * bytes} bytes but data_offsets [${b}, ${e}] span ${e - b}`);
    }
    tensors.set(name, { dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
  }
  // A data section shorter than the header's layout: truncated when the tensors tile [0, maxEnd) exactly (the
  // header is consistent, bytes are missing), otherwise the offsets themselves are wrong.
  let maxEnd = 0;
  let total = 0;
  let worst = '';
  for (const [name, t] of tensors) {
    total += t.end - t.begin;
    if (t.end - dataStart > maxEnd) { maxEnd = t.end - dataStart; worst = name; }
  }
  if (maxEnd > dataSize) {
    if (total === maxEnd) {
      fail('LP3004', `${path}: truncated: the header lays out ${maxEnd} data bytes but the file holds ${dataSize} (tensor "${worst}" ends past the end)`,
        'Download or write the file again.');
    }
    fail('LP3006', `${path}: tensor "${worst}" data_offsets end at ${maxEnd}, past the end of the data (${dataSize} bytes)`);
  }
  // Tensors must not overlap (the format also requires them to be contiguous; we only need them disjoint).
  const sorted = [...tensors.entries()].filter(([, t]) => t.end > t.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]![1].begin < sorted[i - 1]![1].end) {
      fail('LP3006', `${path}: tensors "${sorted[i - 1]![0]}" and "${sorted[i]![0]}" overlap in the data section`);
    }
  }
  return { path, metadata, tensors };
}

/** Reads only the header (names, dtypes, shapes, offsets) of a safetensors file. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await openForRead(path);
  try {
    return await readHeaderFrom(fh, path);
  } finally {
    await fh.close();
  }
}

async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    fail('LP3001', `${path}: cannot open (${err.code ?? err.message})`);
  }
}

/** IEEE half → float32 table-free conversion (exact, subnormals and inf/nan included). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export interface StreamSafetensorsOptions {
  /** Stream only tensors whose name passes (the others are validated in the header but not read). */
  filter?: (name: string) => boolean;
  /**
   * Receives each tensor in file order, one at a time, as raw little-endian bytes in the file's dtype. The
   * bytes are the caller's to keep. A returned promise is awaited before the next tensor is delivered, and
   * its bytes count against `maxBytesInFlight` until then, which is what bounds the read-ahead.
   */
  onTensor: (name: string, tensor: RawTensor) => void | Promise<void>;
  /** Bytes read ahead and not yet released by onTensor (default 256 MiB). A bigger tensor is read on its own. */
  maxBytesInFlight?: number;
  /** Concurrent fh.read calls (default 4). */
  maxReadsInFlight?: number;
  /** A tensor is read in pieces of at most this many bytes, which may overlap (default 16 MiB, at most 1 GiB). */
  readPieceBytes?: number;
}

/** Validates the header of a safetensors file, then streams its tensors' raw bytes to `opts.onTensor`. */
export async function streamSafetensors(path: string, opts: StreamSafetensorsOptions): Promise<SafetensorsHeader> {
  const fh = await openForRead(path);
  try {
    const header = await readHeaderFrom(fh, path);
    await streamTensors(fh, header, opts);
    return header;
  } finally {
    await fh.close();
  }
}

async function streamTensors(fh: FileHandle, header: SafetensorsHeader, opts: StreamSafetensorsOptions): Promise<void> {
  const entries = [...header.tensors.entries()]
    .filter(([name]) => !opts.filter || opts.filter(name))
    .sort((a, b) => a[1].begin - b[1].begin);
  const maxBytes = opts.maxBytesInFlight ?? DEFAULT_BYTES_IN_FLIGHT;
  const limit = new ConcurrencyLimit(opts.maxReadsInFlight ?? DEFAULT_READS_IN_FLIGHT);
  const pieceBytes = Math.max(1, Math.min(opts.readPieceBytes ?? READ_PIECE_BYTES, 1 << 30));
  const reads: (Promise<Uint8Array> | null)[] = [];
  const settled: Promise<unknown>[] = [];
  let inFlight = 0;
  try {
    for (let i = 0; i < entries.length; i++) {
      // Start reads ahead while the budget allows; with nothing held, any tensor may start, however large.
      while (reads.length < entries.length) {
        const size = byteSize(entries[reads.length]![1]);
        if (inFlight > 0 && inFlight + size > maxBytes) break;
        const read = readTensorBytes(fh, header.path, entries[reads.length]!, limit, pieceBytes);
        settled.push(read.then(() => undefined, () => undefined));
        reads.push(read);
        inFlight += size;
      }
      const [name, entry] = entries[i]!;
      const bytes = await reads[i]!;
      reads[i] = null;
      await opts.onTensor(name, { dtype: entry.dtype, shape: entry.shape, bytes });
      inFlight -= byteSize(entry);
    }
  } finally {
    // Never close the file under a pending read (an error above may leave some running).
    await Promise.all(settled);
  }
}

function byteSize(t: SafetensorsEntry): number {
  return t.end - t.begin;
}

/** One tensor's bytes in one buffer, read in pieces that may run concurrently. */
async function readTensorBytes(
  fh: FileHandle, path: string, [name, t]: [string, SafetensorsEntry], limit: ConcurrencyLimit, pieceBytes: number,
): Promise<Uint8Array> {
  // Not zero-filled: every byte is read below (readExactly fails on a short read), and zeroing 14 GB costs seconds.
  const buf = new Uint8Array(Buffer.allocUnsafeSlow(byteSize(t)).buffer, 0, byteSize(t));
  const pieces: Promise<void>[] = [];
  for (let at = 0; at < buf.byteLength; at += pieceBytes) {
    const piece = buf.subarray(at, Math.min(at + pieceBytes, buf.byteLength));
    pieces.push(limit.run(() => readExactly(fh, path, piece, t.begin + at, `tensor "${name}"`)));
  }
  // allSettled first: a failed piece must not leave its siblings writing into a buffer nobody waits for.
  const results = await Promise.allSettled(pieces);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return buf;
}

export interface ReadSafetensorsOptions {
  /** Load only tensors whose name passes (others are validated in the header but not read). */
  filter?: (name: string) => boolean;
  /** Called for each tensor as soon as it is read; when given, tensors are NOT kept in the returned map. */
  onTensor?: (name: string, tensor: SafetensorsTensor) => void;
  /** Read-ahead bound, as in streamSafetensors. */
  maxBytesInFlight?: number;
}

/** Reads every tensor of a safetensors file; float dtypes become Float32Array, I32/I64 become Int32Array. */
export async function readSafetensors(path: string, opts: ReadSafetensorsOptions = {}): Promise<Map<string, SafetensorsTensor>> {
  const out = new Map<string, SafetensorsTensor>();
  await streamSafetensors(path, {
    ...(opts.filter ? { filter: opts.filter } : {}),
    ...(opts.maxBytesInFlight !== undefined ? { maxBytesInFlight: opts.maxBytesInFlight } : {}),
    onTensor: (name, raw) => {
      const tensor: SafetensorsTensor = { dtype: raw.dtype, shape: raw.shape, data: hostData(path, name, raw) };
      if (opts.onTensor) opts.onTensor(name, tensor);
      else out.set(name, tensor);
    },
  });
  return out;
}

/** Float32Array for float dtypes, Int32Array for I32/I64 (F32 and I32 reuse the bytes read, no copy). */
function hostData(path: string, name: string, raw: RawTensor): Float32Array | Int32Array {
  const what = `${path}: tensor "${name}"`;
  if (FLOAT_DTYPES.has(raw.dtype)) return rawToFloat32(raw, what);
  if (INT_DTYPES.has(raw.dtype)) return rawToInt32(raw, what);
  fail('LP3007', `${what} has dtype ${raw.dtype}, which lopper does not load (supported: F32, F16, BF16, F64, I32, I64)`);
}
