// Batched matmul on tensor cores through WGSL subgroup matrices (chromium_experimental_subgroup_matrix):
// float32 tensors in and out, operands rounded to f16 in workgroup memory, products accumulated in f32.
//
// Tiling: one workgroup of 256 invocations (8 subgroups of 32) computes a 128×128 block of C, stepping K by 32.
// Subgroups form a 2×4 grid; each owns 64×32 of the block = 4×2 result matrices of 16×16. Operands are read from
// global memory as vec4 when their contiguous dimension is a multiple of 4, converted to f16 (optionally scaled, see
// below) and stored row-major in padded workgroup tiles; transposed operands are transposed while staging, so one
// kernel shape serves a·b, aᵀ·b, a·bᵀ (the forward and both backward matmuls).
//
// Range: f16 overflows past 65504 and loses precision below 6.1e-5 (subnormals reach 6e-8), which matters for
// gradients. With `scaled`, each operand is multiplied by a power of two 2^(14 − ⌈log2 max|x|⌉) (computed on the GPU
// from max|x|, so no readback) before rounding, and the f32 result is multiplied back; powers of two are exact.
import * as tf from '@tensorflow/tfjs-core';

export const TILE_M = 128;
export const TILE_N = 128;
/** Default K step; variants may use 64 (fewer barriers per multiply, 43 KiB of workgroup memory). */
export const TILE_K = 32;
const WORKGROUP = 256;
const SUBGROUP = 32;
const SB = TILE_N + 8; // padded row stride of the B tile

export type LoadSyntax = 'templated' | 'deprecated';
export type SubgroupIdSource = 'builtin' | 'derived';

export interface TensorCoreVariant {
  transposeA: boolean;
  transposeB: boolean;
  /** A's / B's contiguous dimension is a multiple of 4: bind as vec4 and load 16 bytes at a time. */
  vecA: boolean;
  vecB: boolean;
  scaled: boolean;
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
}

export function variantKey(v: TensorCoreVariant): string {
  return `${v.emulate ? 'emu' : 'tc'}_${v.transposeA ? 'T' : 'N'}${v.transposeB ? 'T' : 'N'}_${v.vecA ? 4 : 1}${v.vecB ? 4 : 1}_${v.scaled ? 's' : 'u'}_${v.syntax}_${v.subgroupId}_k${v.tileK ?? TILE_K}`;
}

interface OperandLoad {
  name: 'A' | 'B';
  /** Storage layout of the tile: rows × contiguous columns. */
  tileRows: number;
  tileCols: number;
  /** WGSL expressions: total rows/cols of the stored matrix, tile origin in storage coordinates, batch base. */
  totalRows: string;
  totalCols: string;
  row0: string;
  col0: string;
  base: string;
  vec: boolean;
  /** WGSL of the workgroup index written for storage element (r, c + e), given `r`, `c`, `e` names. */
  dest: (r: string, ce: string) => string;
  scale: string;
}

function operandLoadCode(op: OperandLoad): string {
  const colVecs = op.tileCols / 4;
  const rowStep = WORKGROUP / colVecs;
  const steps = op.tileRows / rowStep;
  const lines: string[] = [];
  lines.push(`  for (var s${op.name} = 0u; s${op.name} < ${steps}u; s${op.name}++) {`);
  lines.push(`    let r = lid / ${colVecs}u + s${op.name} * ${rowStep}u;`);
  lines.push(`    let c = (lid % ${colVecs}u) * 4u;`);
  lines.push(`    let gr = ${op.row0} + r;`);
  lines.push(`    let gc = ${op.col0} + c;`);
  lines.push(`    var v = vec4<f32>(0.0);`);
  lines.push(`    if (gr < ${op.totalRows}) {`);
  lines.push(`      let idx = ${op.base} + gr * ${op.totalCols} + gc;`);
  if (op.vec) {
    // Contiguous extent is a multiple of 4 and gc is too: the four columns are all in range or all out.
    lines.push(`      if (gc < ${op.totalCols}) { v = ${op.name}[idx / 4u]; }`);
  } else {
    for (let e = 0; e < 4; e++) {
      lines.push(`      if (gc + ${e}u < ${op.totalCols}) { v[${e}] = ${op.name}[idx + ${e}u]; }`);
    }
  }
  lines.push(`    }`);
  lines.push(`    v = v * ${op.scale};`);
  for (let e = 0; e < 4; e++) {
    lines.push(`    tile${op.name}[${op.dest('r', `c + ${e}u`)}] = f16(v[${e}]);`);
  }
  lines.push(`  }`);
  return lines.join('\n');
}

/** WGSL source of one kernel variant. Bindings: 0 C (f32, rw), 1 A, 2 B, 3 dims (uniform), 4 max|A|, 5 max|B| (scaled). */
export function tensorCoreMatMulSource(v: TensorCoreVariant): string {
  const TK = v.tileK ?? TILE_K;
  const SA = TK + 8; // padded row stride of the A tile (halves), limits bank conflicts
  const aLoad: OperandLoad = v.transposeA
    ? {
      name: 'A', tileRows: TK, tileCols: TILE_M, totalRows: 'K', totalCols: 'M', row0: 'k0', col0: 'm0', base: 'aBase',
      vec: v.vecA, dest: (r, ce) => `(${ce}) * ${SA}u + ${r}`, scale: 'scaleA',
    }
    : {
      name: 'A', tileRows: TILE_M, tileCols: TK, totalRows: 'M', totalCols: 'K', row0: 'm0', col0: 'k0', base: 'aBase',
      vec: v.vecA, dest: (r, ce) => `${r} * ${SA}u + ${ce}`, scale: 'scaleA',
    };
  const bLoad: OperandLoad = v.transposeB
    ? {
      name: 'B', tileRows: TILE_N, tileCols: TK, totalRows: 'N', totalCols: 'K', row0: 'n0', col0: 'k0', base: 'bBase',
      vec: v.vecB, dest: (r, ce) => `(${ce}) * ${SB}u + ${r}`, scale: 'scaleB',
    }
    : {
      name: 'B', tileRows: TK, tileCols: TILE_N, totalRows: 'K', totalCols: 'N', row0: 'k0', col0: 'n0', base: 'bBase',
      vec: v.vecB, dest: (r, ce) => `${r} * ${SB}u + ${ce}`, scale: 'scaleB',
    };
  const L = 'subgroup_matrix_left<f16, 16, 16>';
  const R = 'subgroup_matrix_right<f16, 16, 16>';
  const emu = v.emulate === true;
  const load = (type: string, ptr: string, off: string, stride: string): string =>
    emu ? `${off}`
      : v.syntax === 'templated'
        ? `subgroupMatrixLoad<${type}, row_major>(${ptr}, ${off}, ${stride})`
        : `subgroupMatrixLoad<${type}>(${ptr}, ${off}, false, ${stride})`;
  const store = (ptr: string, off: string, value: string, stride: string): string =>
    emu ? `emuStore${ptr === '&C' ? 'C' : 'Tile'}(${off}, ${value}, ${stride});`
      : v.syntax === 'templated'
        ? `subgroupMatrixStore<row_major>(${ptr}, ${off}, ${value}, ${stride});`
        : `subgroupMatrixStore(${ptr}, ${off}, ${value}, false, ${stride});`;

  const mma: string[] = [];
  for (let i = 0; i < 4; i++) mma.push(`      let l${i} = ${load(L, '&tileA', `(rowBase + ${i * 16}u) * ${SA}u + kk`, `${SA}u`)};`);
  for (let j = 0; j < 2; j++) {
    mma.push(`      let r${j} = ${load(R, '&tileB', `kk * ${SB}u + colBase + ${j * 16}u`, `${SB}u`)};`);
    for (let i = 0; i < 4; i++) {
      mma.push(emu
        ? `      acc${i}${j} = emuMma(l${i}, r${j}, acc${i}${j}, lane);`
        : `      acc${i}${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}${j});`);
    }
  }
  const accDecl: string[] = [];
  const scaleBack: string[] = [];
  const fullStore: string[] = [];
  const stagedStore: string[] = [];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 2; j++) {
      accDecl.push(emu ? `  var acc${i}${j} = Frag();` : `  var acc${i}${j} = subgroup_matrix_result<f32, 16, 16>();`);
      if (v.scaled) {
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
      stagedStore.push(`      let gm = m0 + (q / 4u) * 64u + ${i * 16}u + t / 16u;`);
      stagedStore.push(`      let gn = n0 + (q % 4u) * 32u + ${j * 16}u + t % 16u;`);
      stagedStore.push(`      if (gm < M && gn < N) { C[cBase + gm * N + gn] = tileC[q * 256u + t]; }`);
      stagedStore.push(`    }`);
      stagedStore.push(`    workgroupBarrier();`);
    }
  }
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
      sum += f32(tileA[aOff + row * ${SA}u + k]) * f32(tileB[bOff + k * ${SB}u + col]);
    }
    r.v[e] += sum;
  }
  return r;
}
` : '';
  const sgParam = v.subgroupId === 'builtin' && !emu ? `, @builtin(subgroup_id) sgId: u32` : '';
  const sgExpr = v.subgroupId === 'builtin' && !emu ? 'sgId' : `lid / ${SUBGROUP}u`;
  const header = emu ? 'enable f16;\n' : `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
`;
  const emuStores = emu ? `
fn emuStoreC(off: u32, acc: Frag, stride: u32) {
  let lane = lidGlobal % ${SUBGROUP}u;
  for (var e = 0u; e < 8u; e++) {
    let t = lane * 8u + e;
    C[off + (t / 16u) * stride + t % 16u] = acc.v[e];
  }
}
fn emuStoreTile(off: u32, acc: Frag, stride: u32) {
  let lane = lidGlobal % ${SUBGROUP}u;
  for (var e = 0u; e < 8u; e++) {
    let t = lane * 8u + e;
    tileC[off + (t / 16u) * stride + t % 16u] = acc.v[e];
  }
}
var<private> lidGlobal: u32;
` : '';
  const scaleExpr = (i: number): string =>
    v.scaled ? `scaleFor(maxAbs${i === 0 ? 'A' : 'B'}[0])` : '1.0';
  return `${header}
struct Dims { a: vec4<u32>, b: vec4<u32> }
@group(0) @binding(0) var<storage, read_write> C: array<f32>;
@group(0) @binding(1) var<storage, read> A: array<${v.vecA ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(2) var<storage, read> B: array<${v.vecB ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(3) var<uniform> dims: Dims;
${v.scaled ? '@group(0) @binding(4) var<storage, read> maxAbsA: array<f32>;\n@group(0) @binding(5) var<storage, read> maxAbsB: array<f32>;' : ''}

var<workgroup> tileA: array<f16, ${TILE_M * SA}>;
var<workgroup> tileB: array<f16, ${TK * SB}>;
var<workgroup> tileC: array<f32, ${(WORKGROUP / SUBGROUP) * 256}>;
${emuFns}${emuStores}
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
  let rowBase = (sg / 4u) * 64u;
  let colBase = (sg % 4u) * 32u;
  let scaleA = ${scaleExpr(0)};
  let scaleB = ${scaleExpr(1)};
  let unscale = 1.0 / (scaleA * scaleB);
${accDecl.join('\n')}
  for (var k0 = 0u; k0 < K; k0 += ${TK}u) {
${operandLoadCode(aLoad)}
${operandLoadCode(bLoad)}
    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk += 16u) {
${mma.join('\n')}
    }
    workgroupBarrier();
  }
${scaleBack.join('\n')}
  if (m0 + ${TILE_M}u <= M && n0 + ${TILE_N}u <= N) {
${fullStore.join('\n')}
  } else {
${stagedStore.join('\n')}
  }
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
  maxAbs: [tf.TensorInfo, tf.TensorInfo] | null,
): tf.TensorInfo {
  backend.uploadToGPU(a.dataId);
  backend.uploadToGPU(b.dataId);
  if (maxAbs) for (const m of maxAbs) backend.uploadToGPU(m.dataId);
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
  if (maxAbs) {
    entries.push({ binding: 4, resource: { buffer: backend.tensorMap.get(maxAbs[0].dataId).resource! } });
    entries.push({ binding: 5, resource: { buffer: backend.tensorMap.get(maxAbs[1].dataId).resource! } });
  }
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
  if (maxAbs) for (const m of maxAbs) backend.commandQueueOwnedIds.add(m.dataId);
  backend.dispatchCountInPass++;
  if (backend.dispatchCountInPass >= tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE')) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
  return out;
}
