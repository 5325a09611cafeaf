// 16-bit ↔ float32 packing (src/backend/pack16.ts): half-bits.ts's integer conversions against independent
// references (decoding by the format's formula; rounding by nearest-value search over every finite 16-bit value),
// then unpack16/pack16 on the cpu backend and on WebGPU (lavapipe here), bit for bit: all 65,536 patterns of each
// kind, ties, subnormals, NaN and overflow, round trips, odd counts, and sizes past 65,535 workgroups.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { f32BitsToHalf, halfToF32Bits, type HalfKind } from '../../src/backend/half-bits.js';
import {
  pack16, packed16FromBytes, packedWordsFromBytes, unpack16,
} from '../../src/backend/pack16.js';
import { mulberry32 } from '../../src/seeded-random.js';
import { webGpuSession } from './webgpu-session.js';

const session = webGpuSession('float32');
const KINDS: HalfKind[] = ['bf16', 'f16'];

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsOf = (x: number): number => { f32[0] = x; return u32[0]!; };
const floatOf = (bits: number): number => { u32[0] = bits; return f32[0]!; };
const isNaNHalf = (h: number, kind: HalfKind) => kind === 'bf16' ? (h & 0x7fff) > 0x7f80 : (h & 0x7fff) > 0x7c00;

/** The value of a 16-bit pattern by the format's formula, in double precision. */
function decodeByFormula(h: number, kind: HalfKind): number {
  const [expBits, mantBits] = kind === 'bf16' ? [8, 7] : [5, 10];
  const bias = (1 << (expBits - 1)) - 1;
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> mantBits) & ((1 << expBits) - 1);
  const m = h & ((1 << mantBits) - 1);
  if (e === (1 << expBits) - 1) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** (1 - bias - mantBits);
  return sign * (1 + m / 2 ** mantBits) * 2 ** (e - bias);
}

/** Non-negative finite values of `kind` in increasing order, with +Inf appended as the step after the largest. */
function positiveTable(kind: HalfKind): Float64Array {
  const inf = kind === 'bf16' ? 0x7f80 : 0x7c00;
  const out = new Float64Array(inf + 1);
  for (let h = 0; h < inf; h++) out[h] = decodeByFormula(h, kind);
  // Rounding treats Inf as the next value up: one ulp of the top binade past the largest finite value.
  out[inf] = 2 * out[inf - 1]! - out[inf - 2]!;
  return out;
}

/** Nearest 16-bit pattern to float32 x, ties to the even pattern, by binary search: the rounding reference. */
function nearestHalf(x: number, kind: HalfKind, table: Float64Array): number {
  if (Number.isNaN(x)) return -1;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  const top = table.length - 1;
  if (a >= table[top]!) return sign | top;
  let lo = 0, hi = top;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (table[mid]! <= a) lo = mid; else hi = mid;
  }
  const dLo = a - table[lo]!, dHi = table[hi]! - a;
  return sign | (dLo < dHi ? lo : dHi < dLo ? hi : (lo & 1 ? hi : lo));
}

/** Float32 bit patterns that exercise rounding: every tie between neighbours, ±1 ulp around it, specials, random bits. */
function roundingCases(kind: HalfKind): Uint32Array {
  const out: number[] = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x7fffffff, 0x00000001, 0x807fffff, 0x7f7fffff];
  const top = kind === 'bf16' ? 0x7f80 : 0x7c00;
  for (let h = 0; h < top; h += kind === 'bf16' ? 7 : 1) {
    const mid = bitsOf((decodeByFormula(h, kind) + decodeByFormula(h + 1, kind)) / 2);
    out.push(mid, mid - 1, mid + 1, (mid | 0x80000000) >>> 0);
  }
  const random = mulberry32(kind === 'bf16' ? 1 : 2);
  for (let i = 0; i < 50_000; i++) out.push(Math.floor(random() * 2 ** 32));
  return Uint32Array.from(out);
}

function expectedHalf(bits: number, kind: HalfKind, table: Float64Array): number {
  const x = floatOf(bits);
  return Number.isNaN(x) ? -1 : nearestHalf(x, kind, table);
}

function assertHalfMatches(actual: number, bits: number, kind: HalfKind, table: Float64Array, what: string): void {
  const expected = expectedHalf(bits, kind, table);
  if (expected === -1) {
    if (!isNaNHalf(actual, kind) || (actual & 0x8000) !== ((bits >>> 16) & 0x8000)) assert.fail(`${what}: NaN ${bits.toString(16)} → ${actual.toString(16)}`);
  } else if (actual !== expected) {
    assert.fail(`${what}: ${kind} of ${floatOf(bits)} (0x${bits.toString(16)}) is 0x${actual.toString(16)}, expected 0x${expected.toString(16)}`);
  }
}

const allPatterns = () => { const b = new Uint8Array(2 * 65536); new Uint16Array(b.buffer).forEach((_, i, a) => { a[i] = i; }); return b; };

/** unpack16 of every 16-bit pattern and pack16 of the rounding cases on the active backend, as bits. */
async function convertOnBackend(kind: HalfKind, cases: Uint32Array): Promise<{ unpacked: Uint32Array; packed: Int32Array; roundTrip: Uint32Array }> {
  const before = tf.memory().numTensors;
  const { packed, n } = packed16FromBytes(allPatterns());
  const unpackedT = unpack16(packed, n, kind);
  const x = tf.tensor1d(new Float32Array(cases.slice().buffer), 'float32');
  const packedT = pack16(x, kind);
  const roundT = unpack16(packedT, cases.length, kind);
  const out = {
    unpacked: new Uint32Array(((await unpackedT.data()) as Float32Array).slice().buffer),
    packed: (await packedT.data()) as Int32Array,
    roundTrip: new Uint32Array(((await roundT.data()) as Float32Array).slice().buffer),
  };
  tf.dispose([packed, unpackedT, x, packedT, roundT]);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  return out;
}

function checkConversions(kind: HalfKind, cases: Uint32Array, got: Awaited<ReturnType<typeof convertOnBackend>>, where: string): void {
  const table = positiveTable(kind);
  for (let h = 0; h < 65536; h++) {
    if (got.unpacked[h] !== halfToF32Bits(h, kind)) assert.fail(`${where}: unpack ${kind} 0x${h.toString(16)} → 0x${got.unpacked[h]!.toString(16)}`);
  }
  const halves = new Uint16Array(got.packed.buffer, got.packed.byteOffset, cases.length);
  for (let i = 0; i < cases.length; i++) {
    assertHalfMatches(halves[i]!, cases[i]!, kind, table, `${where}: pack16[${i}]`);
    if (got.roundTrip[i] !== halfToF32Bits(halves[i]!, kind)) assert.fail(`${where}: round trip [${i}]`);
  }
  if (cases.length % 2 === 1) assert.equal(got.packed[got.packed.length - 1]! >>> 16, 0, 'odd count: zero high half');
}

describe('half-bits reference conversions', () => {
  for (const kind of KINDS) {
    it(`${kind}: every pattern decodes to its formula value and re-encodes to itself (NaNs quietened)`, () => {
      for (let h = 0; h < 65536; h++) {
        const x = floatOf(halfToF32Bits(h, kind));
        const v = decodeByFormula(h, kind);
        if (Number.isNaN(v)) {
          assert.ok(Number.isNaN(x));
          const back = f32BitsToHalf(halfToF32Bits(h, kind), kind);
          assert.equal(back, h | (kind === 'bf16' ? 0x40 : 0x200), `NaN 0x${h.toString(16)} keeps sign and payload`);
        } else {
          assert.ok(Object.is(x, v), `0x${h.toString(16)}: ${x} vs ${v}`);
          assert.equal(f32BitsToHalf(halfToF32Bits(h, kind), kind), h);
        }
      }
    });

    it(`${kind}: float32 → ${kind} rounds to nearest even (ties, subnormals, overflow to Inf)`, () => {
      const table = positiveTable(kind);
      for (const bits of roundingCases(kind)) assertHalfMatches(f32BitsToHalf(bits, kind), bits, kind, table, 'reference');
    });
  }

  it('packs raw little-endian bytes two per word, an odd count padded with a zero half', () => {
    const words = packedWordsFromBytes(Uint8Array.from([0x34, 0x12, 0x78, 0x56, 0xcd, 0xab]));
    assert.deepEqual([...words], [0x56781234, 0x0000abcd]);
    assert.throws(() => packedWordsFromBytes(new Uint8Array(3)), /16-bit/);
  });
});

describe('unpack16 / pack16 on the cpu backend', () => {
  for (const kind of KINDS) {
    it(`${kind}: all 65,536 patterns unpack exactly; pack16 rounds like the reference; unpack16(pack16(x)) = RNE(x)`, async () => {
      const prev = tf.getBackend();
      await tf.setBackend('cpu');
      try {
        const cases = roundingCases(kind);
        checkConversions(kind, cases, await convertOnBackend(kind, cases), 'cpu');
        const odd = cases.subarray(0, 11);
        checkConversions(kind, odd, await convertOnBackend(kind, odd), 'cpu odd');
      } finally {
        await tf.setBackend(prev);
      }
    });
  }
});

describe('unpack16 / pack16 on WebGPU', () => {
  for (const kind of KINDS) {
    it(`${kind}: bit-identical to the reference (all patterns, rounding cases, odd count)`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      const cases = roundingCases(kind);
      checkConversions(kind, cases, await convertOnBackend(kind, cases), 'webgpu');
      const odd = cases.subarray(0, 11);
      checkConversions(kind, odd, await convertOnBackend(kind, odd), 'webgpu odd');
    });
  }

  it('handles 17 M values (more than 65,535 workgroups of 128 for both directions)', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const n = 17_000_001;
    const random = mulberry32(9);
    const bits = new Uint32Array(n);
    // Normal float32 values of either sign in [2⁻²⁰, 2²⁰): every one rounds differently from its neighbours.
    for (let i = 0; i < n; i++) bits[i] = (((random() * 2 ** 32) & 0x80000000) | ((107 + Math.floor(random() * 40)) << 23) | Math.floor(random() * 2 ** 23)) >>> 0;
    for (const kind of KINDS) {
      const x = tf.tensor1d(new Float32Array(bits.buffer.slice(0)), 'float32');
      const packed = pack16(x, kind);
      const back = unpack16(packed, n, kind);
      const words = (await packed.data()) as Int32Array;
      const values = new Uint32Array(((await back.data()) as Float32Array).slice().buffer);
      tf.dispose([x, packed, back]);
      const halves = new Uint16Array(words.buffer, words.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const h = f32BitsToHalf(bits[i]!, kind);
        if (halves[i] !== h || values[i] !== halfToF32Bits(h, kind)) assert.fail(`${kind}[${i}]: 0x${halves[i]!.toString(16)} vs 0x${h.toString(16)}`);
      }
    }
  });
});
