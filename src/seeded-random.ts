// Seeded randomness: model initialisation, data order, calibration windows, LoRA initialisation and dropout masks
// are all derived from the recipe seed and a position (epoch, step, micro-batch), never from a stateful generator,
// so a run resumed from a checkpoint draws exactly the numbers an uninterrupted run draws.

/** mulberry32: a small, fast 32-bit PRNG; returns a function yielding floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes several integers into one 32-bit seed (splitmix-style avalanche), e.g. `deriveSeed(seed, epoch)`. */
export function deriveSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const part of parts) {
    h = Math.imul(h ^ (part >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** A seeded Fisher–Yates permutation of 0..n-1. */
export function seededPermutation(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const random = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Fills `out` with N(0, std²) samples (Box–Muller, two per pair of draws) taken from `random`. */
export function fillNormal(out: Float32Array, random: () => number, std = 1): Float32Array {
  for (let i = 0; i < out.length; i += 2) {
    const u1 = Math.max(random(), 1e-12);
    const u2 = random();
    const r = Math.sqrt(-2 * Math.log(u1)) * std;
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/** Standard normal samples (Box–Muller) from a seeded generator. */
export function normalSamples(count: number, seed: number): Float32Array {
  return fillNormal(new Float32Array(count), mulberry32(seed));
}

/** Uniform samples in [low, high) from a seeded generator. */
export function uniformSamples(count: number, low: number, high: number, seed: number): Float32Array {
  const random = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = low + (high - low) * random();
  return out;
}
