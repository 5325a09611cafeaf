// float32 ↔ bfloat16 / float16: exhaustive round-trips of all 65,536 patterns of each, hand-picked ties and
// edges, and a million random float32 patterns checked against an independent value-level reference of
// round-to-nearest-even (computed in float64 from neighbouring candidates, not from bit tricks).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from '../../src/model/dtype.js';
import { halfToFloat } from '../../src/model/safetensors.js';

const allPatterns = () => Uint16Array.from({ length: 65536 }, (_, i) => i);
const fromBits = (bits: number[]) => new Float32Array(Uint32Array.from(bits).buffer);
const hex = (n: number) => '0x' + n.toString(16);

test('every bf16 pattern survives bf16 → f32 → bf16 bit for bit (NaNs included)', () => {
  const h = allPatterns();
  const back = float32ToBf16(bf16ToFloat32(h));
  for (let i = 0; i < 65536; i++) assert.equal(back[i], h[i], hex(i));
});

test('every f16 pattern survives f16 → f32 → f16 bit for bit, and f16 → f32 is exact', () => {
  const h = allPatterns();
  const f = f16ToFloat32(h);
  const back = float32ToF16(f);
  for (let i = 0; i < 65536; i++) {
    assert.equal(back[i], h[i], hex(i));
    const ref = halfToFloat(i);
    if (Number.isNaN(ref)) assert.ok(Number.isNaN(f[i]), hex(i));
    else assert.ok(Object.is(f[i], ref), `${hex(i)}: ${f[i]} vs ${ref}`);
  }
});

test('bf16 rounding: ties to even, carries, Inf, NaN', () => {
  const cases: [number, number][] = [
    [0x3f808000, 0x3f80], // 1 + 2^-8: tie, even stays
    [0x3f818000, 0x3f82], // tie, odd rounds up
    [0x3f808001, 0x3f81], // just above the tie
    [0x3f807fff, 0x3f80], // just below
    [0xbf818000, 0xbf82], // sign symmetric
    [0x3fffffff, 0x4000], // mantissa carry into the exponent
    [0x7f7fffff, 0x7f80], // largest float32 → +Inf
    [0x7f7f7fff, 0x7f7f], // stays the largest bf16
    [0x7f800000, 0x7f80], [0xff800000, 0xff80], // ±Inf
    [0x7fc00000, 0x7fc0], [0xffc00001, 0xffc0], // quiet NaNs keep sign and payload top
    [0x7f800001, 0x7fc0], // NaN whose payload is only in the dropped bits stays NaN (quiet bit set)
    [0x00000001, 0x0000], [0x80000000, 0x8000], // tiny → +0, -0 stays -0
    [0x00008000, 0x0000], [0x00018000, 0x0002], // subnormal ties
  ];
  const out = float32ToBf16(fromBits(cases.map((c) => c[0])));
  cases.forEach(([x, want], i) => assert.equal(out[i], want, `${hex(x)} → ${hex(out[i]!)}, want ${hex(want)}`));
});

test('f16 rounding: ties to even, overflow, subnormals, NaN', () => {
  const f32bits = (v: number) => new Uint32Array(new Float32Array([v]).buffer)[0]!;
  const cases: [number, number][] = [
    [f32bits(1 + 2 ** -11), 0x3c00], // tie, even stays
    [f32bits(1 + 3 * 2 ** -11), 0x3c02], // tie, odd rounds up
    [f32bits(1 + 2 ** -11 + 2 ** -20), 0x3c01],
    [f32bits(65504), 0x7bff], [f32bits(65519), 0x7bff], // below the overflow tie
    [f32bits(65520), 0x7c00], [f32bits(-65520), 0xfc00], // the tie rounds to even = Inf
    [f32bits(1e10), 0x7c00], [0x7f7fffff, 0x7c00],
    [f32bits(2 ** -14), 0x0400], // smallest normal
    [f32bits(2 ** -14 - 2 ** -25), 0x0400], // tie between 0x3ff and 0x400 → even 0x400
    [f32bits(2 ** -24), 0x0001], // smallest subnormal
    [f32bits(2 ** -25), 0x0000], // tie between 0 and 2^-24 → 0
    [f32bits(2 ** -25 * (1 + 2 ** -23)), 0x0001], // just above it
    [f32bits(3 * 2 ** -25), 0x0002], // tie between 1 and 2 → 2
    [f32bits(5 * 2 ** -25), 0x0002], // tie between 2 and 3 → 2
    [f32bits(-(2 ** -26)), 0x8000], // -tiny → -0
    [0x7f800000, 0x7c00], [0xff800000, 0xfc00],
    [0x7fc00000, 0x7e00], [0x7f800001, 0x7e00], [0xffe00000, 0xff00],
  ];
  const out = float32ToF16(fromBits(cases.map((c) => c[0])));
  cases.forEach(([x, want], i) => assert.equal(out[i], want, `${hex(x)} → ${hex(out[i]!)}, want ${hex(want)}`));
});

/** Round-to-nearest-even of finite `v` onto ascending non-negative candidates `lo`/`hi` (bit patterns). */
function nearestEven(v: number, lo: number, loValue: number, hi: number, hiValue: number): number {
  const dLo = v - loValue, dHi = hiValue - v;
  if (dLo < dHi) return lo;
  if (dHi < dLo) return hi;
  return (lo & 1) === 0 ? lo : hi;
}

function referenceBf16(x: number): number {
  const v = fromBits([x])[0]!;
  if (Number.isNaN(v)) return -1;
  const sign = (x >>> 16) & 0x8000, a = x & 0x7fffffff;
  if (a === 0x7f800000) return sign | 0x7f80;
  const lo = a >>> 16;
  const loValue = fromBits([lo << 16])[0]!;
  // The value past the largest bf16 is 2^128 for rounding purposes (IEEE: as if the exponent were unbounded).
  const hiValue = lo === 0x7f7f ? 2 ** 128 : fromBits([(lo + 1) << 16])[0]!;
  return sign | nearestEven(Math.abs(v), lo, loValue, lo + 1, hiValue);
}

const halfValues = Float64Array.from({ length: 0x7c00 }, (_, h) => halfToFloat(h));

function referenceF16(x: number): number {
  const v = fromBits([x])[0]!;
  if (Number.isNaN(v)) return -1;
  const sign = (x >>> 16) & 0x8000, abs = Math.abs(v);
  if (abs === Infinity || abs >= 65536) return sign | 0x7c00;
  let lo = 0, hi = 0x7bff;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (halfValues[mid]! <= abs) lo = mid; else hi = mid - 1; }
  const next = lo + 1, nextValue = lo === 0x7bff ? 65536 : halfValues[next]!;
  return sign | nearestEven(abs, lo, halfValues[lo]!, next, nextValue);
}

test('a million random float32 patterns round like the float64 reference (bf16 and f16)', () => {
  let seed = 12345;
  const rand = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed; };
  const n = 1_000_000;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rand();
    // Half of the samples near the f16 range (exponents 100..143), so subnormal and overflow paths get traffic.
    bits[i] = i % 2 === 0 ? r : (r & 0x807fffff) | ((100 + (rand() % 44)) << 23);
  }
  const f = new Float32Array(bits.buffer);
  const bf = float32ToBf16(f), hf = float32ToF16(f);
  for (let i = 0; i < n; i++) {
    const wantBf = referenceBf16(bits[i]!), wantHf = referenceF16(bits[i]!);
    if (wantBf < 0) {
      assert.ok((bf[i]! & 0x7f80) === 0x7f80 && (bf[i]! & 0x7f) !== 0, `NaN ${hex(bits[i]!)} → bf16 ${hex(bf[i]!)}`);
      assert.ok((hf[i]! & 0x7c00) === 0x7c00 && (hf[i]! & 0x3ff) !== 0, `NaN ${hex(bits[i]!)} → f16 ${hex(hf[i]!)}`);
      continue;
    }
    if (bf[i] !== wantBf) assert.fail(`bf16 of ${hex(bits[i]!)}: ${hex(bf[i]!)}, want ${hex(wantBf)}`);
    if (hf[i] !== wantHf) assert.fail(`f16 of ${hex(bits[i]!)}: ${hex(hf[i]!)}, want ${hex(wantHf)}`);
  }
});

test('conversions honour subarray offsets', () => {
  const f = new Float32Array([9, 1, 2, 9]);
  assert.deepEqual([...float32ToBf16(f.subarray(1, 3))], [0x3f80, 0x4000]);
  assert.deepEqual([...float32ToF16(f.subarray(1, 3))], [0x3c00, 0x4000]);
  const dst = new Float32Array(4);
  bf16ToFloat32(new Uint16Array([0x3f80, 0x4000]), dst.subarray(2));
  assert.deepEqual([...dst], [0, 0, 1, 2]);
});
