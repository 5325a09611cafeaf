// Exact bit conversions between float32 and the 16-bit float formats checkpoints store (bf16, IEEE f16), as
// integer arithmetic on the bit patterns. kernels/pack16-programs.ts runs the same steps in WGSL (without relying
// on shader-f16, which software adapters may lack); these are the host path and the tests' reference.

export type HalfKind = 'bf16' | 'f16';

/** float32 bits (uint32) of the 16-bit pattern h. f16 subnormals are normalised; Inf and NaN keep sign and payload. */
export function halfToF32Bits(h: number, kind: HalfKind): number {
  if (kind === 'bf16') return (h << 16) >>> 0;
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // mant·2⁻²⁴ with its leading one at bit p: exponent p − 24, the bits below it shifted up to the mantissa's top.
  const p = 31 - Math.clz32(mant);
  return (sign | ((p + 103) << 23) | (((mant << (10 - p)) & 0x3ff) << 13)) >>> 0;
}

/** The bf16 pattern nearest to float32 bits (ties to even); NaN stays NaN (quietened), overflow rounds to ±Inf. */
function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) >>> 0 > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The f16 pattern nearest to float32 bits (ties to even); NaN stays NaN, |x| ≥ 65520 becomes ±Inf. */
function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const a = (bits & 0x7fffffff) >>> 0;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >>> 13) & 0x3ff);
  if (a >= 0x47800000) return sign | 0x7c00;
  // Normal f16: rebias the exponent (127 → 15) and round the 13 dropped bits; a carry may step into the exponent.
  if (a >= 0x38800000) return sign | ((a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13);
  const e = a >>> 23;
  if (e < 102) return sign;
  // Subnormal f16: the value in units of 2⁻²⁴ is m·2^(e − 126), i.e. m shifted right by s = 126 − e ∈ [14, 24].
  const m = (a & 0x7fffff) | 0x800000;
  const s = 126 - e;
  let q = m >>> s;
  const rem = m & ((1 << s) - 1);
  const half = 1 << (s - 1);
  if (rem > half || (rem === half && (q & 1) === 1)) q++;
  return sign | q;
}

/** The 16-bit pattern of float32 bits (uint32), rounded to nearest even. */
export function f32BitsToHalf(bits: number, kind: HalfKind): number {
  return kind === 'bf16' ? f32BitsToBf16(bits >>> 0) : f32BitsToF16(bits >>> 0);
}
