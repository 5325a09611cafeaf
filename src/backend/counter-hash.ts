// Counter-based random bits for GPU dropout: the bits of element i are a pure function of (seed, i), so a mask is
// recomputed wherever it is needed (the backward pass, another backend) instead of being stored or uploaded, and a
// resumed run draws the same masks. The hash is exact 32-bit integer arithmetic, written twice — here in JS and
// below as WGSL — so every backend keeps exactly the same elements.
//
// lowbias32 is Chris Wellons' two-multiply 32-bit finalizer (hash-prospector; bias ≈ 0.17, close to the best found
// for its shape). One application to i ^ k0 is a bijection of i for a fixed key, so two seeds would give masks that
// are xor-shifted copies of each other; the second keyed round (+ k1, lowbias32 again) breaks that structure.

/** Chris Wellons' lowbias32 finalizer (https://github.com/skeeto/hash-prospector), on int32 bit patterns. */
function lowbias32Int(x: number): number {
  // Staying in int32 (no >>> 0 between steps) keeps V8 off boxed doubles: bench/dropout-bench.ts on wasm went from
  // 79 to 24 ms per [1024, 4096] dropout.
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b | 0);
  return x ^ (x >>> 16);
}

/** lowbias32 of uint32 x, as uint32. */
export function lowbias32(x: number): number {
  return lowbias32Int(x | 0) >>> 0;
}

export interface CounterKeys {
  k0: number;
  k1: number;
}

/** The two per-seed keys of counterHash, derived once per op on the host (uint32 of the seed). */
export function counterKeys(seed: number): CounterKeys {
  const k0 = lowbias32((seed + 0x9e3779b9) >>> 0);
  return { k0, k1: lowbias32((k0 + 0x9e3779b9) >>> 0) };
}

/** 32 random bits of counter i under the keys (k0, k1) of counterKeys (plain numbers: this is the host's hot loop). */
export function counterHash(k0: number, k1: number, i: number): number {
  return lowbias32Int((lowbias32Int(i ^ k0) + k1) | 0) >>> 0;
}

/**
 * The keep threshold t of dropout `rate`: with u = (h >>> 8) / 2²⁴ ∈ [0, 1), `u ≥ rate` ⇔ `(h >>> 8) ≥ t` for
 * t = ⌈rate·2²⁴⌉ (rate·2²⁴ is exact in double precision), so every backend decides with one integer comparison.
 */
export function keepThreshold(rate: number): number {
  return Math.ceil(rate * 16777216);
}

/** The same hash in WGSL; `counterHash(k0, k1, i)` matches counterHash above bit for bit. */
export const COUNTER_HASH_WGSL = /* wgsl */ `
fn lowbias32(v : u32) -> u32 {
  var x = v;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  return x ^ (x >> 16u);
}

fn counterHash(k0 : u32, k1 : u32, i : u32) -> u32 {
  return lowbias32(lowbias32(i ^ k0) + k1);
}
`;
