// A tensor as its file stores it: dtype name, shape and little-endian bytes, not converted. Streaming loaders
// hand these out so that a backend can upload 16-bit weights as 16-bit; `rawToFloat32` converts one tensor
// for consumers that need host float32 (never the whole model at once).
import { LopperError } from '../errors/lopper-error.js';
import { halfToFloat32 } from './dtype.js';

export interface RawTensor {
  /** Safetensors dtype name: `F32`, `F16`, `BF16`, `F64`, `I32`, `I64`, ... */
  dtype: string;
  shape: number[];
  /** Little-endian element bytes, row-major. */
  bytes: Uint8Array;
}

/** A tensor already in a 16-bit float dtype, written to files unchanged. */
export interface Raw16Tensor extends RawTensor {
  dtype: 'F16' | 'BF16';
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** A typed-array view of `bytes`, or of an aligned copy when its offset does not suit the element size. */
function view<T>(bytes: Uint8Array, bytesPerElement: number, make: (buf: ArrayBuffer, offset: number, length: number) => T): T {
  const length = bytes.byteLength / bytesPerElement;
  const src = bytes.byteOffset % bytesPerElement === 0 ? bytes : bytes.slice();
  return make(src.buffer as ArrayBuffer, src.byteOffset, length);
}

/**
 * Float32 values of a float tensor (F32, F16, BF16 exactly; F64 rounded to nearest float32). F32 input is
 * returned as a view of the same memory when aligned, so no copy is made.
 */
export function rawToFloat32(t: RawTensor, what = 'tensor'): Float32Array {
  switch (t.dtype) {
    case 'F32': return view(t.bytes, 4, (b, o, n) => new Float32Array(b, o, n));
    case 'F16':
    case 'BF16': return halfToFloat32(t.dtype, view(t.bytes, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case 'F64': return Float32Array.from(view(t.bytes, 8, (b, o, n) => new Float64Array(b, o, n)));
    default:
      throw new LopperError('LP3007', `${what} has dtype ${t.dtype}; only F32, F16, BF16 and F64 convert to float32`);
  }
}

/** Int32 values of an I32 or I64 tensor (I64 values outside int32 are refused). */
export function rawToInt32(t: RawTensor, what = 'tensor'): Int32Array {
  if (t.dtype === 'I32') return view(t.bytes, 4, (b, o, n) => new Int32Array(b, o, n));
  if (t.dtype !== 'I64') throw new LopperError('LP3007', `${what} has dtype ${t.dtype}; only I32 and I64 convert to int32`);
  const wide = view(t.bytes, 8, (b, o, n) => new BigInt64Array(b, o, n));
  const out = new Int32Array(wide.length);
  for (let i = 0; i < wide.length; i++) {
    const v = wide[i]!;
    if (v > 2147483647n || v < -2147483648n) throw new LopperError('LP3007', `${what} holds int64 value ${v}, outside int32 range`);
    out[i] = Number(v);
  }
  return out;
}
