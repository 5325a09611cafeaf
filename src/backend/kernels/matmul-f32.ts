// A float32 register-tiled matmul for the product every linear layer computes, y = x·Wᵀ (x [M, K], W [N, K], both
// row-major, K contiguous). tfjs's kernel gives each thread a 4×4 block of a 32×32 tile and reaches 11–16 TFLOP/s
// on the H200; here a workgroup of 256 threads computes a 128×128 tile, each thread an 8×8 block, with 16-deep K
// slices staged in workgroup memory (transposed so that a thread reads its operands as vec4s) and the next slice
// prefetched into registers while the current one is multiplied. Plain float32 fused multiply-adds in order of k
// within a slice: the same arithmetic as any float32 matmul, summed in a different order (rounding-level change).
// Everything else — other transposes, batched products, small or K-ragged shapes — stays on tfjs's kernel.
import * as tf from '@tensorflow/tfjs-core';
import type { FusedProgram } from './fused-programs.js';

const TILE = 128;
const SLICE_K = 16;
/**
 * Products of fewer output tiles stay on tfjs's kernel: one 128×128 tile per workgroup leaves most of the GPU idle
 * below about one wave of workgroups (H200, 132 SMs: [128, 4096]·[1024, 4096]ᵀ took 47 ms here, 13 ms in tfjs's
 * kernel; at 128 tiles and more this kernel was 1.6–2.1× faster).
 */
const MIN_TILES = 96;
/**
 * Below this many workgroups (about two per SM on the H200) the K axis is split: each workgroup sums one K range of
 * its tile into its own [M, N] slab and the slabs are added afterwards. A [512, 4096]·[4096, 4096]ᵀ product (a
 * perplexity batch of 4 × 128) has 128 tiles, one 256-thread workgroup per SM, too few to hide memory latency.
 */
const TARGET_WORKGROUPS = 264;
/** Smallest K range of one split. */
const MIN_SPLIT_K = 256;

/** How many K ranges a product of this shape is split into (1: none). */
export function splitCount(M: number, N: number, K: number): number {
  const tiles = Math.ceil(M / TILE) * Math.ceil(N / TILE);
  let splits = 1;
  while (tiles * splits < TARGET_WORKGROUPS && K / (splits * 2) >= MIN_SPLIT_K) splits *= 2;
  return splits;
}

interface ProgramBackend {
  runWebGPUProgram(program: FusedProgram & { variableComponents?: number[] }, inputs: tf.TensorInfo[], outputDtype: 'float32',
    uniforms?: { type: string; data: number[] }[]): tf.TensorInfo;
}

function program(M: number, N: number, splits: number): FusedProgram & { variableComponents: number[] } {
  return {
    variableNames: ['A', 'B'],
    variableComponents: [4, 4],
    outputShape: splits === 1 ? [M, N] : [splits, M, N],
    shaderKey: 'lopper_matmul_f32_nt_128x128x16_v3',
    dispatchLayout: { x: [1], y: [0] } as unknown as { x: number[] },
    dispatch: [Math.ceil(N / TILE), Math.ceil(M / TILE), splits],
    workgroupSize: [16, 16, 1],
    uniforms: 'dimM : i32, dimN : i32, dimK : i32, splitK : i32,',
    getUserCode: () => `
  // Transposed K slices: sA[k * 32 + q] holds rows 4q..4q+3 of column k (sB likewise for W's rows).
  var<workgroup> sA : array<vec4<f32>, ${SLICE_K * 32}>;
  var<workgroup> sB : array<vec4<f32>, ${SLICE_K * 32}>;

  // Threads 0-127 stage A's slice, 128-255 W's: each a 4 × 4 block (rows 4q..4q+3, k quad kq), read as four
  // vec4s along k and stored as four vec4s along rows, so that no two threads write parts of one vec4.
  fn loadBlock(row0 : i32, k0 : i32, kEnd : i32) -> array<vec4<f32>, 4> {
    let t = i32(localIndex);
    let isA = t < 128;
    let b = t % 128;
    let k = k0 + (b % 4) * 4;
    let limit = select(uniforms.dimN, uniforms.dimM, isA);
    var out : array<vec4<f32>, 4>;
    for (var e = 0; e < 4; e++) {
      let row = row0 + (b / 4) * 4 + e;
      var v = vec4<f32>(0.0);
      if (row < limit && k < kEnd) {
        let at = (row * uniforms.dimK + k) / 4;
        if (isA) { v = A[at]; } else { v = B[at]; }
      }
      out[e] = v;
    }
    return out;
  }

  fn storeBlock(v : array<vec4<f32>, 4>) {
    let t = i32(localIndex);
    let b = t % 128;
    let q = b / 4;
    let kq = b % 4;
    for (var e = 0; e < 4; e++) {
      let column = vec4<f32>(v[0][e], v[1][e], v[2][e], v[3][e]);
      if (t < 128) { sA[(kq * 4 + e) * 32 + q] = column; } else { sB[(kq * 4 + e) * 32 + q] = column; }
    }
  }

  fn main() {
    let tx = i32(localId.x);
    let ty = i32(localId.y);
    let m0 = i32(workgroupId.y) * ${TILE};
    let n0 = i32(workgroupId.x) * ${TILE};
    var acc : array<vec4<f32>, 16>;
    for (var i = 0; i < 16; i++) { acc[i] = vec4<f32>(0.0); }
    let row0 = select(n0, m0, i32(localIndex) < 128);
    // This workgroup's K range (the whole of K unless the product is split; splitK is a multiple of the slice).
    let kBegin = i32(workgroupId.z) * uniforms.splitK;
    let kEnd = min(uniforms.dimK, kBegin + uniforms.splitK);
    let slab = i32(workgroupId.z) * uniforms.dimM * uniforms.dimN;
    var next = loadBlock(row0, kBegin, kEnd);
    // The trip count is a uniform (barriers need uniform control flow); slices past kEnd load zeros.
    for (var step = 0; step < uniforms.splitK; step = step + ${SLICE_K}) {
      let k0 = kBegin + step;
      workgroupBarrier();
      storeBlock(next);
      workgroupBarrier();
      if (k0 + ${SLICE_K} < kEnd) {
        next = loadBlock(row0, k0 + ${SLICE_K}, kEnd);
      } else {
        next = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
      }
      for (var k = 0; k < ${SLICE_K}; k++) {
        let a0 = sA[k * 32 + ty];
        let a1 = sA[k * 32 + ty + 16];
        let b0 = sB[k * 32 + tx];
        let b1 = sB[k * 32 + tx + 16];
        for (var r = 0; r < 4; r++) {
          acc[r * 2] = fma(vec4<f32>(a0[r]), b0, acc[r * 2]);
          acc[r * 2 + 1] = fma(vec4<f32>(a0[r]), b1, acc[r * 2 + 1]);
          acc[8 + r * 2] = fma(vec4<f32>(a1[r]), b0, acc[8 + r * 2]);
          acc[8 + r * 2 + 1] = fma(vec4<f32>(a1[r]), b1, acc[8 + r * 2 + 1]);
        }
      }
    }
    for (var i = 0; i < 8; i++) {
      let m = m0 + select(ty * 4 + i, 64 + ty * 4 + i - 4, i >= 4);
      if (m < uniforms.dimM) {
        for (var h = 0; h < 2; h++) {
          let v = acc[i * 2 + h];
          for (var c = 0; c < 4; c++) {
            let n = n0 + h * 64 + tx * 4 + c;
            if (n < uniforms.dimN) { result[slab + m * uniforms.dimN + n] = v[c]; }
          }
        }
      }
    }
  }`,
  };
}

/** Whether y = a·bᵀ of these shapes runs on this kernel (2-D float32, K a multiple of 4, at least one tile's work). */
export function coversF32MatMul(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean, force = false): boolean {
  if (transposeA || !transposeB || a.shape.length !== 2 || b.shape.length !== 2) return false;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return false;
  const [M, K] = a.shape as [number, number];
  const [N, Kb] = b.shape as [number, number];
  if (K !== Kb || K % 4 !== 0 || M === 0 || N === 0 || K === 0) return false;
  return force || (Math.ceil(M / TILE) * Math.ceil(N / TILE) * splitCount(M, N, K) >= MIN_TILES && K >= SLICE_K);
}

/** a [M, K] · b [N, K]ᵀ → [M, N] on the kernel; callers check coversF32MatMul first. */
export function f32MatMulNT(a: tf.TensorInfo, b: tf.TensorInfo, backend: object, splits = splitCount(a.shape[0]!, b.shape[0]!, a.shape[1]!)): tf.TensorInfo {
  const [M, K] = a.shape as [number, number];
  const N = b.shape[0]!;
  const splitK = Math.ceil(K / splits / SLICE_K) * SLICE_K;
  const run = backend as ProgramBackend & { disposeData(id: object): void };
  const out = run.runWebGPUProgram(program(M, N, splits), [a, b], 'float32', [
    // One entry per scalar: tfjs aligns a multi-value entry as a vector, the struct declares scalars.
    { type: 'int32', data: [M] }, { type: 'int32', data: [N] }, { type: 'int32', data: [K] }, { type: 'int32', data: [splitK] },
  ]);
  if (splits === 1) return out;
  try {
    return run.runWebGPUProgram(slabSumProgram(splits, M, N), [out], 'float32', [{ type: 'int32', data: [(M * N) / lanesOf(M * N)] }]);
  } finally {
    run.disposeData(out.dataId);
  }
}

const lanesOf = (size: number) => (size % 4 === 0 ? 4 : 1);
const SUM_WORKGROUP = 128;

/**
 * [splits, M, N] → [M, N], each output the slabs added in split order. tfjs's Sum over axis 0 transposes and then
 * gives every output its own workgroup: on the H200 a split [512, 4096]·[4096, 4096]ᵀ ran at 9 TFLOP/s with it
 * against 27 for the unsplit [512, 4096]·[14336, 4096]ᵀ.
 */
function slabSumProgram(splits: number, M: number, N: number): FusedProgram & { size: boolean; outputComponent: number } {
  const lanes = lanesOf(M * N);
  const type = lanes === 4 ? 'vec4<f32>' : 'f32';
  return {
    variableNames: ['slabs'],
    outputShape: [M, N],
    shaderKey: `lopper_matmul_f32_slab_sum_${splits}_${lanes}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [Math.ceil((M * N) / lanes / SUM_WORKGROUP), 1, 1],
    workgroupSize: [SUM_WORKGROUP, 1, 1],
    size: true,
    outputComponent: lanes,
    uniforms: 'slabSize : i32,',
    getUserCode: () => `
  fn main(index : i32) {
    if (index < uniforms.size) {
      var total : ${type} = slabs[index];
      for (var s = 1; s < ${splits}; s++) { total = total + slabs[s * uniforms.slabSize + index]; }
      setOutputAtIndex(index, total);
    }
  }`,
  };
}

type MatMulArgs = { inputs: { a: tf.TensorInfo; b: tf.TensorInfo }; backend: object; attrs: { transposeA: boolean; transposeB: boolean } & Record<string, unknown> };

let registered: tf.KernelFunc | null = null;

/**
 * Puts the kernel in front of tfjs's BatchMatMul on 'webgpu' (once per process; the registry outlives backends).
 * LOPPER_F32_MATMUL=tfjs keeps tfjs's kernel (benchmarks, bisecting).
 */
export function registerF32MatMul(): void {
  if (registered || process.env.LOPPER_F32_MATMUL === 'tfjs') return;
  const original = tf.getKernel('BatchMatMul', 'webgpu')?.kernelFunc;
  if (!original) return;
  registered = ((args: MatMulArgs) => {
    const { a, b } = args.inputs;
    const { transposeA, transposeB } = args.attrs;
    return coversF32MatMul(a, b, transposeA, transposeB) ? f32MatMulNT(a, b, args.backend) : original(args as unknown as Parameters<tf.KernelFunc>[0]);
  }) as unknown as tf.KernelFunc;
  tf.unregisterKernel('BatchMatMul', 'webgpu');
  tf.registerKernel({ kernelName: 'BatchMatMul', backendName: 'webgpu', kernelFunc: registered });
}

/** The kernel's product as a tensor, for any covered shape however small (tests, benchmarks); `splits` forces a K split. */
export function f32MatMulTensors(a: tf.Tensor2D, b: tf.Tensor2D, splits?: number): tf.Tensor2D {
  if (!coversF32MatMul(a, b, false, true, true)) throw new Error(`f32MatMulTensors: [${a.shape}]·[${b.shape}]ᵀ is not covered`);
  return tf.engine().makeTensorFromTensorInfo(f32MatMulNT(a, b, tf.backend(), splits)) as tf.Tensor2D;
}
