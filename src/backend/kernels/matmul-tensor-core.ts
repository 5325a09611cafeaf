// Batched matmul on tensor cores through WGSL subgroup matrices (chromium_experimental_subgroup_matrix):
// float32 tensors in and out, operands rounded to f16 in workgroup memory, products accumulated in f32.
//
// Tiling: one workgroup of 256 invocations (8 subgroups of 32) computes a 128×128 block of C, stepping K by 64
// (32 where workgroup memory is under 48 KiB).
// Subgroups form a grid; each owns 64×32 (or 32×64) of the block = 8 result matrices of 16×16. Operands are read
// from global memory as vec4 when their contiguous dimension is a multiple of 4, converted to f16 (optionally scaled,
// see below) and stored in padded workgroup tiles in their storage layout; a transposed operand is read back with
// column-major matrix loads, so one kernel shape serves a·b, aᵀ·b, a·bᵀ (the forward and both backward matmuls).
// The next K tile is fetched into registers while the tensor cores work on the current one. Shapes that are
// multiples of the tile compile without bounds checks.
//
// Range: f16 overflows past 65504 and loses precision below 6.1e-5 (subnormals reach 6e-8), which matters for
// gradients. A scaled operand is multiplied by a power of two 2^(14 − ⌈log2 max|x|⌉) (computed on the GPU
// from max|x|, so no readback) before rounding, and the f32 result is multiplied back; powers of two are exact.
// Which operands are scaled is the caller's choice (register.ts scales incoming gradients, which are small; forward
// activations and weights are well inside f16's range and skip the extra reduction).
import * as tf from '@tensorflow/tfjs-core';

export const TILE_M = 128;
export const TILE_N = 128;
/** The smaller K step, for devices with less than 48 KiB of workgroup memory (the default is DEFAULT_KNOBS.tileK). */
export const TILE_K = 32;
const WORKGROUP = 256;
const SUBGROUP = 32;
const SUBGROUPS = WORKGROUP / SUBGROUP;
/** Halves of padding per staged row: keeps matrix loads 16-byte aligned and spreads rows over banks. */
const PAD = 8;

export type LoadSyntax = 'templated' | 'deprecated';
export type SubgroupIdSource = 'builtin' | 'derived';
/** 16×16 result matrices per subgroup, rows × columns (8 subgroups tile the 128×128 block). */
export type SubgroupLayout = '4x2' | '2x4';

export interface TensorCoreVariant {
  transposeA: boolean;
  transposeB: boolean;
  /** A's / B's contiguous dimension is a multiple of 4: bind as vec4 and load 16 bytes at a time. */
  vecA: boolean;
  vecB: boolean;
  /** Multiply A / B by a power of two before rounding to f16 (see Range above); binds max|A| / max|B|. */
  scaleA: boolean;
  scaleB: boolean;
  syntax: LoadSyntax;
  subgroupId: SubgroupIdSource;
  /**
   * Replace the subgroup-matrix builtins by plain WGSL with the same data flow (each of 32 "lanes" of a virtual
   * subgroup owns 8 elements of every 16×16 result). For checking staging, transposes and edges on devices without
   * subgroup matrices (lavapipe); it is slow and never used for real work.
   */
  emulate?: boolean;
  /** K step of the workgroup tile (32 default, or 64). */
  tileK?: 32 | 64;
  subgroupLayout?: SubgroupLayout;
  /** Load the next K tile into registers while the tensor cores work on the current one. */
  prefetch?: boolean;
  /** M and N are multiples of 128 and K of the K step: no bounds checks, results stored straight to C. */
  aligned?: boolean;
}

/** Defaults of the optional knobs (the fastest combination measured on the H200, see bench/README.md). */
export const DEFAULT_KNOBS = {
  tileK: 64 as 32 | 64, subgroupLayout: '4x2' as SubgroupLayout, prefetch: true,
};

/** The optional knobs with defaults filled in (built on every matmul call, so without object spreads). */
function knobsOf(v: TensorCoreVariant): { tileK: 32 | 64; subgroupLayout: SubgroupLayout; prefetch: boolean } {
  return {
    tileK: v.tileK ?? DEFAULT_KNOBS.tileK,
    subgroupLayout: v.subgroupLayout ?? DEFAULT_KNOBS.subgroupLayout,
    prefetch: v.prefetch ?? DEFAULT_KNOBS.prefetch,
  };
}

/** Pipeline cache key. */
export function variantKey(v: TensorCoreVariant): string {
  const k = knobsOf(v);
  return `${v.emulate ? 'emu' : 'tc'}_${v.transposeA ? 'T' : 'N'}${v.transposeB ? 'T' : 'N'}_${v.vecA ? 4 : 1}${v.vecB ? 4 : 1}_${v.scaleA ? 's' : 'u'}${v.scaleB ? 's' : 'u'}_${v.syntax}_${v.subgroupId}_k${k.tileK}_${k.subgroupLayout}${k.prefetch ? '_pf' : ''}${v.aligned ? '_al' : ''}`;
}

/** One operand's staging: global tile (storage coordinates) → f16 workgroup tile. */
interface OperandStaging {
  name: 'A' | 'B';
  /** Tile extent in storage layout: rows × contiguous columns. */
  tileRows: number;
  tileCols: number;
  /** WGSL expressions: stored matrix rows/cols, tile origin in storage coordinates, batch base. */
  totalRows: string;
  totalCols: string;
  row0: string;
  col0: string;
  base: string;
  vec: boolean;
  /** Halves per staged row (tileCols plus padding); tiles keep the storage layout. */
  stride: number;
  scale: string;
}

/** vec4 reads per invocation for one operand tile. */
function readsPerInvocation(op: OperandStaging): number {
  return (op.tileRows * op.tileCols) / 4 / WORKGROUP;
}

/** Global → registers: `p<name><s>` = 4 consecutive storage elements (zero outside the matrix). */
function globalReadCode(op: OperandStaging, aligned: boolean, k0: string): string {
  const colVecs = op.tileCols / 4;
  const rowStep = WORKGROUP / colVecs;
  const lines: string[] = [];
  for (let s = 0; s < readsPerInvocation(op); s++) {
    const reg = `p${op.name}${s}`;
    const r = `(lid / ${colVecs}u + ${s * rowStep}u)`;
    const c = `((lid % ${colVecs}u) * 4u)`;
    const gr = `(${op.row0.replace('k0', k0)} + ${r})`;
    const gc = `(${op.col0.replace('k0', k0)} + ${c})`;
    const idx = `(${op.base} + ${gr} * ${op.totalCols} + ${gc})`;
    if (aligned) {
      lines.push(`    ${reg} = ${op.name}[${idx} / 4u];`);
      continue;
    }
    lines.push(`    ${reg} = vec4<f32>(0.0);`);
    lines.push(`    if (${gr} < ${op.totalRows}) {`);
    if (op.vec) {
      // The contiguous extent is a multiple of 4 and so is gc: the four columns are all in range or all out.
      lines.push(`      if (${gc} < ${op.totalCols}) { ${reg} = ${op.name}[${idx} / 4u]; }`);
    } else {
      for (let e = 0; e < 4; e++) lines.push(`      if (${gc} + ${e}u < ${op.totalCols}) { ${reg}[${e}] = ${op.name}[${idx} + ${e}u]; }`);
    }
    lines.push(`    }`);
  }
  return lines.join('\n');
}

/** Registers → f16 workgroup tile (scaled). */
function tileWriteCode(op: OperandStaging): string {
  const colVecs = op.tileCols / 4;
  const rowStep = WORKGROUP / colVecs;
  const lines: string[] = [];
  for (let s = 0; s < readsPerInvocation(op); s++) {
    const reg = `p${op.name}${s}`;
    lines.push(`    {`);
    lines.push(`      let r = lid / ${colVecs}u + ${s * rowStep}u;`);
    lines.push(`      let c = (lid % ${colVecs}u) * 4u;`);
    lines.push(`      let h = vec4<f16>(${reg} * ${op.scale});`);
    for (let e = 0; e < 4; e++) lines.push(`      tile${op.name}[r * ${op.stride}u + c + ${e}u] = h[${e}];`);
    lines.push(`    }`);
  }
  return lines.join('\n');
}

/** WGSL source of one kernel variant. Bindings: 0 C (f32, rw), 1 A, 2 B, 3 dims (uniform), 4 max|A|, 5 max|B| (if scaled). */
export function tensorCoreMatMulSource(v: TensorCoreVariant): string {
  const { tileK: TK, subgroupLayout, prefetch } = knobsOf(v);
  const aligned = v.aligned === true;
  const emu = v.emulate === true;
  const MI = subgroupLayout === '4x2' ? 4 : 2; // result matrices per subgroup along M
  const NJ = 8 / MI; // … along N
  const sgCols = TILE_N / (16 * NJ);
  // Tiles keep the storage layout (vector-friendly, conflict-light stores); a transposed operand is read back with
  // column-major matrix loads. (Transposing while staging instead measured 1.3–2.4× slower on the H200.)
  const aColMajor = v.transposeA;
  const bColMajor = v.transposeB;
  const strideA = aColMajor ? TILE_M + PAD : TK + PAD; // halves per staged row of A
  const strideB = bColMajor ? TK + PAD : TILE_N + PAD;
  const sizeA = aColMajor ? TK * strideA : TILE_M * strideA;
  const sizeB = bColMajor ? TILE_N * strideB : TK * strideB;

  const aStage: OperandStaging = v.transposeA
    ? {
      name: 'A', tileRows: TK, tileCols: TILE_M, totalRows: 'K', totalCols: 'M', row0: 'k0', col0: 'm0', base: 'aBase',
      vec: v.vecA, scale: 'scaleA', stride: strideA,
    }
    : {
      name: 'A', tileRows: TILE_M, tileCols: TK, totalRows: 'M', totalCols: 'K', row0: 'm0', col0: 'k0', base: 'aBase',
      vec: v.vecA, scale: 'scaleA', stride: strideA,
    };
  const bStage: OperandStaging = v.transposeB
    ? {
      name: 'B', tileRows: TILE_N, tileCols: TK, totalRows: 'N', totalCols: 'K', row0: 'n0', col0: 'k0', base: 'bBase',
      vec: v.vecB, scale: 'scaleB', stride: strideB,
    }
    : {
      name: 'B', tileRows: TK, tileCols: TILE_N, totalRows: 'K', totalCols: 'N', row0: 'k0', col0: 'n0', base: 'bBase',
      vec: v.vecB, scale: 'scaleB', stride: strideB,
    };

  const L = 'subgroup_matrix_left<f16, 16, 16>';
  const R = 'subgroup_matrix_right<f16, 16, 16>';
  const load = (type: string, ptr: string, off: string, stride: number, colMajor: boolean): string => {
    if (emu) return off;
    const major = colMajor ? 'col_major' : 'row_major';
    return v.syntax === 'templated'
      ? `subgroupMatrixLoad<${type}, ${major}>(${ptr}, ${off}, ${stride}u)`
      : `subgroupMatrixLoad<${type}>(${ptr}, ${off}, ${colMajor}, ${stride}u)`;
  };
  const store = (ptr: string, off: string, value: string, stride: string): string =>
    emu ? `emuStore${ptr === '&C' ? 'C' : 'Tile'}(${off}, ${value}, ${stride});`
      : v.syntax === 'templated'
        ? `subgroupMatrixStore<row_major>(${ptr}, ${off}, ${value}, ${stride});`
        : `subgroupMatrixStore(${ptr}, ${off}, ${value}, false, ${stride});`;
  // Offsets of left matrix i / right matrix j at depth kk inside the staged tiles.
  const leftOffset = (i: number): string => aColMajor
    ? `kk * ${strideA}u + rowBase + ${i * 16}u` : `(rowBase + ${i * 16}u) * ${strideA}u + kk`;
  const rightOffset = (j: number): string => bColMajor
    ? `(colBase + ${j * 16}u) * ${strideB}u + kk` : `kk * ${strideB}u + colBase + ${j * 16}u`;

  const mma: string[] = [];
  for (let i = 0; i < MI; i++) mma.push(`      let l${i} = ${load(L, '&tileA', leftOffset(i), strideA, aColMajor)};`);
  for (let j = 0; j < NJ; j++) {
    mma.push(`      let r${j} = ${load(R, '&tileB', rightOffset(j), strideB, bColMajor)};`);
    for (let i = 0; i < MI; i++) {
      mma.push(emu
        ? `      acc${i}${j} = emuMma(l${i}, r${j}, acc${i}${j}, lane);`
        : `      acc${i}${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}${j});`);
    }
  }
  const accDecl: string[] = [];
  const scaleBack: string[] = [];
  const fullStore: string[] = [];
  const stagedStore: string[] = [];
  for (let i = 0; i < MI; i++) {
    for (let j = 0; j < NJ; j++) {
      accDecl.push(emu ? `  var acc${i}${j} = Frag();` : `  var acc${i}${j} = subgroup_matrix_result<f32, 16, 16>();`);
      if (v.scaleA || v.scaleB) {
        scaleBack.push(emu
          ? `  for (var e = 0u; e < 8u; e++) { acc${i}${j}.v[e] = acc${i}${j}.v[e] * unscale; }`
          : `  acc${i}${j} = subgroupMatrixScalarMultiply(acc${i}${j}, unscale);`);
      }
      fullStore.push(`    ${store('&C', `cBase + (m0 + rowBase + ${i * 16}u) * N + n0 + colBase + ${j * 16}u`, `acc${i}${j}`, 'N')}`);
      stagedStore.push(`    ${store('&tileC', `sg * 256u`, `acc${i}${j}`, '16u')}`);
      stagedStore.push(`    workgroupBarrier();`);
      stagedStore.push(`    for (var e = 0u; e < 8u; e++) {`);
      stagedStore.push(`      let t = (lid % ${SUBGROUP}u) * 8u + e;`);
      stagedStore.push(`      let q = lid / ${SUBGROUP}u;`);
      stagedStore.push(`      let gm = m0 + (q / ${sgCols}u) * ${16 * MI}u + ${i * 16}u + t / 16u;`);
      stagedStore.push(`      let gn = n0 + (q % ${sgCols}u) * ${16 * NJ}u + ${j * 16}u + t % 16u;`);
      stagedStore.push(`      if (gm < M && gn < N) { C[cBase + gm * N + gn] = tileC[q * 256u + t]; }`);
      stagedStore.push(`    }`);
      stagedStore.push(`    workgroupBarrier();`);
    }
  }
  const emuElemA = aColMajor ? `tileA[aOff + k * ${strideA}u + row]` : `tileA[aOff + row * ${strideA}u + k]`;
  const emuElemB = bColMajor ? `tileB[bOff + col * ${strideB}u + k]` : `tileB[bOff + k * ${strideB}u + col]`;
  const emuFns = emu ? `
// Emulated 16×16 fragments: lane t of the virtual subgroup owns elements t*8 … t*8+7 (row-major).
struct Frag { v: array<f32, 8> }
fn emuMma(aOff: u32, bOff: u32, acc: Frag, lane: u32) -> Frag {
  var r = acc;
  for (var e = 0u; e < 8u; e++) {
    let t = lane * 8u + e;
    let row = t / 16u;
    let col = t % 16u;
    var sum = 0.0;
    for (var k = 0u; k < 16u; k++) {
      sum += f32(${emuElemA}) * f32(${emuElemB});
    }
    r.v[e] += sum;
  }
  return r;
}
fn emuStoreC(off: u32, acc: Frag, stride: u32) {
  let lane = lidGlobal % ${SUBGROUP}u;
  for (var e = 0u; e < 8u; e++) {
    let t = lane * 8u + e;
    C[off + (t / 16u) * stride + t % 16u] = acc.v[e];
  }
}
${aligned ? '' : `fn emuStoreTile(off: u32, acc: Frag, stride: u32) {
  let lane = lidGlobal % ${SUBGROUP}u;
  for (var e = 0u; e < 8u; e++) {
    let t = lane * 8u + e;
    tileC[off + (t / 16u) * stride + t % 16u] = acc.v[e];
  }
}`}
var<private> lidGlobal: u32;
` : '';
  const sgParam = v.subgroupId === 'builtin' && !emu ? `, @builtin(subgroup_id) sgId: u32` : '';
  const sgExpr = v.subgroupId === 'builtin' && !emu ? 'sgId' : `lid / ${SUBGROUP}u`;
  const header = emu ? 'enable f16;\n' : `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
`;
  const scaleExpr = (i: number): string => (i === 0 ? v.scaleA : v.scaleB) ? `scaleFor(maxAbs${i === 0 ? 'A' : 'B'}[0])` : '1.0';
  const regs: string[] = [];
  for (const op of [aStage, bStage]) for (let s = 0; s < readsPerInvocation(op); s++) regs.push(`  var p${op.name}${s} = vec4<f32>(0.0);`);
  const stage = `${tileWriteCode(aStage)}\n${tileWriteCode(bStage)}`;
  const compute = `    for (var kk = 0u; kk < ${TK}u; kk += 16u) {\n${mma.join('\n')}\n    }`;
  // With prefetch the next tile's global reads are issued before the multiplies of the current one, so their
  // latency hides behind the tensor-core work; one register set per invocation (8 vec4 at the default tile).
  const mainLoop = prefetch
    ? `${globalReadCode(aStage, aligned, '0u')}
${globalReadCode(bStage, aligned, '0u')}
  for (var k0 = 0u; k0 < K; k0 += ${TK}u) {
${stage}
    workgroupBarrier();
    if (k0 + ${TK}u < K) {
      let kn = k0 + ${TK}u;
${globalReadCode(aStage, aligned, 'kn')}
${globalReadCode(bStage, aligned, 'kn')}
    }
${compute}
    workgroupBarrier();
  }`
    : `  for (var k0 = 0u; k0 < K; k0 += ${TK}u) {
${globalReadCode(aStage, aligned, 'k0')}
${globalReadCode(bStage, aligned, 'k0')}
${stage}
    workgroupBarrier();
${compute}
    workgroupBarrier();
  }`;
  return `${header}
struct Dims { a: vec4<u32>, b: vec4<u32> }
@group(0) @binding(0) var<storage, read_write> C: array<f32>;
@group(0) @binding(1) var<storage, read> A: array<${v.vecA ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(2) var<storage, read> B: array<${v.vecB ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(3) var<uniform> dims: Dims;
${v.scaleA ? '@group(0) @binding(4) var<storage, read> maxAbsA: array<f32>;' : ''}
${v.scaleB ? '@group(0) @binding(5) var<storage, read> maxAbsB: array<f32>;' : ''}

var<workgroup> tileA: array<f16, ${sizeA}>;
var<workgroup> tileB: array<f16, ${sizeB}>;
${aligned ? '' : `var<workgroup> tileC: array<f32, ${SUBGROUPS * 256}>;`}
${emuFns}
// 2^(14 - ceil(log2 m)) maps the largest magnitude to at most 16384 (f16 max 65504); 1 for zero or non-finite m.
fn scaleFor(m: f32) -> f32 {
  if (!(m > 0.0) || m > 3.0e38) { return 1.0; }
  let e = clamp(14.0 - ceil(log2(m)), -100.0, 100.0);
  return exp2(e);
}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32${sgParam}) {
  let M = dims.a.x;
  let N = dims.a.y;
  let K = dims.a.z;
  let aBase = wg.z * dims.a.w;
  let bBase = wg.z * dims.b.x;
  let cBase = wg.z * dims.b.y;
  let m0 = wg.y * ${TILE_M}u;
  let n0 = wg.x * ${TILE_N}u;
  let sg = ${sgExpr};${emu ? `
  lidGlobal = lid;
  let lane = lid % ${SUBGROUP}u;` : ''}
  let rowBase = (sg / ${sgCols}u) * ${16 * MI}u;
  let colBase = (sg % ${sgCols}u) * ${16 * NJ}u;
  let scaleA = ${scaleExpr(0)};
  let scaleB = ${scaleExpr(1)};
  let unscale = 1.0 / (scaleA * scaleB);
${accDecl.join('\n')}
${regs.join('\n')}
${mainLoop}
${scaleBack.join('\n')}
${aligned ? fullStore.join('\n') : `  if (m0 + ${TILE_M}u <= M && n0 + ${TILE_N}u <= N) {
${fullStore.join('\n')}
  } else {
${stagedStore.join('\n')}
  }`}
}
`;
}

/** The parts of tfjs's WebGPUBackend that a raw dispatch needs (internal API of tfjs-backend-webgpu 4.22). */
export interface WebGpuBackendInternals {
  device: GPUDevice;
  tensorMap: { get(dataId: object): { resource: GPUBuffer | null } };
  commandQueueOwnedIds: WeakSet<object>;
  commandEncoder: GPUCommandEncoder | null;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  uploadToGPU(dataId: object): void;
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  makeUniforms(u: Array<{ type: 'int32' | 'uint32' | 'float32'; data: number[] }>): GPUBufferBinding;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  disposeData(dataId: object): boolean;
}

export interface MatMulShape {
  batch: number;
  M: number;
  N: number;
  K: number;
  /** Elements between consecutive batch matrices of A / B (0 when broadcast). */
  strideA: number;
  strideB: number;
}

/**
 * Records one tensor-core matmul into tfjs's current compute pass (so it is ordered with tfjs's own dispatches and
 * shares its submit batching). `a3`, `b3` hold the operands in storage layout; returns C [batch, M, N].
 */
export function dispatchTensorCoreMatMul(
  backend: WebGpuBackendInternals,
  pipeline: GPUComputePipeline,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  shape: MatMulShape,
  outShape: number[],
  maxAbs: [tf.TensorInfo | null, tf.TensorInfo | null],
): tf.TensorInfo {
  const scales = maxAbs.filter((m): m is tf.TensorInfo => m !== null);
  backend.uploadToGPU(a.dataId);
  backend.uploadToGPU(b.dataId);
  for (const m of scales) backend.uploadToGPU(m.dataId);
  const out = backend.makeTensorInfo(outShape, 'float32');
  backend.uploadToGPU(out.dataId);
  const uniforms = backend.makeUniforms([
    { type: 'uint32', data: [shape.M, shape.N, shape.K, shape.strideA] },
    { type: 'uint32', data: [shape.strideB, shape.M * shape.N, 0, 0] },
  ]);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: backend.tensorMap.get(out.dataId).resource! } },
    { binding: 1, resource: { buffer: backend.tensorMap.get(a.dataId).resource! } },
    { binding: 2, resource: { buffer: backend.tensorMap.get(b.dataId).resource! } },
    { binding: 3, resource: uniforms },
  ];
  maxAbs.forEach((m, i) => {
    if (m) entries.push({ binding: 4 + i, resource: { buffer: backend.tensorMap.get(m.dataId).resource! } });
  });
  const bindGroup = backend.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
  backend.ensureCommandEncoderReady();
  if (!backend.computePassEncoder) backend.computePassEncoder = backend.commandEncoder!.beginComputePass({});
  backend.computePassEncoder.setPipeline(pipeline);
  backend.computePassEncoder.setBindGroup(0, bindGroup);
  backend.computePassEncoder.dispatchWorkgroups(
    Math.ceil(shape.N / TILE_N),
    Math.ceil(shape.M / TILE_M),
    shape.batch,
  );
  backend.commandQueueOwnedIds.add(a.dataId);
  backend.commandQueueOwnedIds.add(b.dataId);
  backend.commandQueueOwnedIds.add(out.dataId);
  for (const m of scales) backend.commandQueueOwnedIds.add(m.dataId);
  backend.dispatchCountInPass++;
  if (backend.dispatchCountInPass >= tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE')) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
  return out;
}
