// Safetensors reader/writer (https://github.com/huggingface/safetensors#format): 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}, then the
// data. The reader validates the whole header against the file size before allocating anything, then reads one
// tensor at a time straight into its final Float32Array/Int32Array (f16/bf16 are converted in bounded chunks), so a
// model never exists twice in memory and a lying header cannot trigger a giant allocation.
import { open, type FileHandle } from 'node:fs/promises';
import { LopperError } from '../errors/lopper-error.js';

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

const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
};
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
const INT_DTYPES = new Set(['I32', 'I64']);
/** A header bigger than this is refused before it is read (real headers of 400-shard 405B models are < 1 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Bytes converted per read for f16/bf16/f64/i64. */
const CHUNK_BYTES = 16 * 1024 * 1024;

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

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half → float32 table-free conversion (exact, subnormals and inf/nan included). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function bf16ToFloat(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

async function readTensorData(fh: FileHandle, path: string, name: string, t: SafetensorsEntry): Promise<Float32Array | Int32Array> {
  const numel = t.shape.reduce((a, d) => a * d, 1);
  if (t.dtype === 'F32' || t.dtype === 'I32') {
    const out = t.dtype === 'F32' ? new Float32Array(numel) : new Int32Array(numel);
    // Node reads little-endian bytes straight into the typed array (x86/ARM hosts are little-endian).
    await readExactly(fh, path, new Uint8Array(out.buffer), t.begin, `tensor "${name}"`);
    return out;
  }
  if (!FLOAT_DTYPES.has(t.dtype) && !INT_DTYPES.has(t.dtype)) {
    fail('LP3007', `${path}: tensor "${name}" has dtype ${t.dtype}, which lopper does not load (supported: F32, F16, BF16, F64, I32, I64)`);
  }
  const bytes = DTYPE_BYTES[t.dtype]!;
  const out = FLOAT_DTYPES.has(t.dtype) ? new Float32Array(numel) : new Int32Array(numel);
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / bytes));
  const chunk = new Uint8Array(Math.min(numel, perChunk) * bytes);
  for (let start = 0; start < numel; start += perChunk) {
    const count = Math.min(perChunk, numel - start);
    const view = chunk.subarray(0, count * bytes);
    await readExactly(fh, path, view, t.begin + start * bytes, `tensor "${name}"`);
    const dv = new DataView(view.buffer, view.byteOffset, view.byteLength);
    switch (t.dtype) {
      case 'F16': for (let i = 0; i < count; i++) out[start + i] = halfToFloat(dv.getUint16(2 * i, true)); break;
      case 'BF16': for (let i = 0; i < count; i++) out[start + i] = bf16ToFloat(dv.getUint16(2 * i, true)); break;
      case 'F64': for (let i = 0; i < count; i++) out[start + i] = dv.getFloat64(8 * i, true); break;
      case 'I64':
        for (let i = 0; i < count; i++) {
          const v = dv.getBigInt64(8 * i, true);
          if (v > 2147483647n || v < -2147483648n) fail('LP3007', `${path}: tensor "${name}" holds int64 value ${v}, outside int32 range`);
          out[start + i] = Number(v);
        }
        break;
    }
  }
  return out;
}

export interface ReadSafetensorsOptions {
  /** Load only tensors whose name passes (others are validated in the header but not read). */
  filter?: (name: string) => boolean;
  /** Called for each tensor as soon as it is read; when given, tensors are NOT kept in the returned map. */
  onTensor?: (name: string, tensor: SafetensorsTensor) => void;
}

/** Reads every tensor of a safetensors file; float dtypes become Float32Array, I32/I64 become Int32Array. */
export async function readSafetensors(path: string, opts: ReadSafetensorsOptions = {}): Promise<Map<string, SafetensorsTensor>> {
  const fh = await openForRead(path);
  try {
    const header = await readHeaderFrom(fh, path);
    const out = new Map<string, SafetensorsTensor>();
    // Read in file order (sequential I/O).
    const entries = [...header.tensors.entries()].sort((a, b) => a[1].begin - b[1].begin);
    for (const [name, entry] of entries) {
      if (opts.filter && !opts.filter(name)) continue;
      const tensor: SafetensorsTensor = { dtype: entry.dtype, shape: entry.shape, data: await readTensorData(fh, path, name, entry) };
      if (opts.onTensor) opts.onTensor(name, tensor);
      else out.set(name, tensor);
    }
    return out;
  } finally {
    await fh.close();
  }
}

export interface WritableTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

/**
 * Writes tensors (F32 for Float32Array, I32 for Int32Array) in map order, streaming each tensor's bytes,
 * with the header padded with spaces to an 8-byte boundary as the reference implementation does.
 */
export async function writeSafetensors(path: string, tensors: Map<string, WritableTensor>, metadata: Record<string, string> = {}): Promise<void> {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const numel = t.shape.reduce((a, d) => a * d, 1);
    if (numel !== t.data.length) {
      throw new LopperError('LP3016', `${path}: tensor "${name}" has shape ${JSON.stringify(t.shape)} (${numel} values) but ${t.data.length} values`);
    }
    const dtype = t.data instanceof Float32Array ? 'F32' : 'I32';
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  const raw = new TextEncoder().encode(json);
  const pad = (8 - (raw.byteLength % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = new TextEncoder().encode(json);
  const lenBytes = new Uint8Array(8);
  new DataView(lenBytes.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  let fh: FileHandle;
  try {
    fh = await open(path, 'w');
  } catch (e) {
    throw new LopperError('LP3016', `${path}: cannot create (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    await fh.write(lenBytes);
    await fh.write(headerBytes);
    for (const t of tensors.values()) {
      await fh.write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
  } finally {
    await fh.close();
  }
}
