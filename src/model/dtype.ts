// Float dtypes of model files and their bit-exact conversions. Everything works on whole typed arrays through
// Uint32/Uint16 views (no per-element DataView), so converting a 7B tensor costs one pass over its bits.
//
// float32 → bfloat16 / float16 round to nearest, ties to even (what torch's `.to(torch.bfloat16)` and
// `.half()` do). NaN stays NaN with its sign and top payload bits; when truncation would drop every payload
// bit, the quiet bit is set (otherwise the result would read as Inf). Consequence: every 16-bit pattern,
// NaNs included, survives 16 → 32 → 16 bit for bit (torch instead collapses NaNs to one canonical NaN).

/** torch dtype names as config.json writes them. */
export type HfDtype = 'float32' | 'float16' | 'bfloat16';
/** Safetensors float dtype names lopper writes. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';
export type HalfDtype = 'F16' | 'BF16';

export const SAFETENSORS_DTYPE: Record<HfDtype, FloatDtype> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
export const HF_DTYPE: Record<FloatDtype, HfDtype> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
export const FLOAT_DTYPE_BYTES: Record<FloatDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** float32 bits → bfloat16 bits, round to nearest even. */
export function float32ToBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    if ((x & 0x7fffffff) > 0x7f800000) {
      const h = x >>> 16;
      dst[i] = (h & 0x7f) === 0 ? h | 0x40 : h;
    } else {
      // Adding 0x7fff plus the lowest kept bit rounds half-way cases to the even neighbour; finite values that
      // round past the largest bf16 carry into the exponent and become ±Inf, as IEEE rounding requires.
      dst[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return dst;
}

/** bfloat16 bits → float32 (exact: bf16 is the top half of a float32). */
export function bf16ToFloat32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  return dst;
}

/** float32 bits → IEEE half bits, round to nearest even (overflow → ±Inf, subnormals exact). */
export function float32ToF16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToF16(bits[i]!);
  return dst;
}

function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const a = x & 0x7fffffff;
  if (a >= 0x7f800000) {
    if (a === 0x7f800000) return sign | 0x7c00;
    const m = (a >>> 13) & 0x3ff;
    return sign | 0x7c00 | (m === 0 ? 0x200 : m);
  }
  // 65520 (0x477ff000) is half-way between 65504 (largest half, odd mantissa) and 65536: ties-to-even → Inf.
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a >= 0x38800000) {
    // Normal half: rebias the exponent (127 → 15) and drop 13 mantissa bits with round-to-nearest-even.
    const m = a - 0x38000000;
    return sign | ((m + 0xfff + ((m >>> 13) & 1)) >>> 13);
  }
  // 2^-25 and below round to ±0 (2^-25 itself is the tie between 0 and the smallest subnormal 2^-24).
  if (a <= 0x33000000) return sign;
  // Subnormal half: value / 2^-24 = mantissa (with implicit 1) >> (126 - exponent), rounded to nearest even.
  const shift = 126 - (a >>> 23);
  const mant = (a & 0x7fffff) | 0x800000;
  let q = mant >>> shift;
  const rem = mant & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (q & 1) === 1)) q++;
  return sign | q;
}

let halfTable: Uint32Array | null = null;

/** float32 bits of every half, built once (256 KiB); NaN payloads are kept so NaNs round-trip exactly. */
function halfToFloat32Bits(): Uint32Array {
  if (halfTable) return halfTable;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 31) t[h] = sign | 0x7f800000 | (m << 13);
    else if (e !== 0) t[h] = sign | ((e + 112) << 23) | (m << 13);
    else if (m === 0) t[h] = sign;
    else {
      // Subnormal: normalise the mantissa (value = m · 2^-24).
      let shift = 0;
      while ((m << shift & 0x400) === 0) shift++;
      t[h] = sign | ((113 - shift) << 23) | (((m << shift) & 0x3ff) << 13);
    }
  }
  return (halfTable = t);
}

/** IEEE half bits → float32 (exact). */
export function f16ToFloat32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const table = halfToFloat32Bits();
  const out = new Uint32Array(dst.buffer, dst.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return dst;
}

/** Converts float32 values to the 16-bit dtype's bits. */
export function float32ToHalf(dtype: HalfDtype, src: Float32Array, dst?: Uint16Array): Uint16Array {
  return dtype === 'BF16' ? float32ToBf16(src, dst) : float32ToF16(src, dst);
}

/** Converts 16-bit dtype bits to float32 values. */
export function halfToFloat32(dtype: HalfDtype, src: Uint16Array, dst?: Float32Array): Float32Array {
  return dtype === 'BF16' ? bf16ToFloat32(src, dst) : f16ToFloat32(src, dst);
}

/** The 16-bit kind of a dtype for the GPU pack/unpack kernels (backend/pack16.ts), or null for float32. */
export function halfKindOf(dtype: HfDtype): 'bf16' | 'f16' | null {
  return dtype === 'bfloat16' ? 'bf16' : dtype === 'float16' ? 'f16' : null;
}
