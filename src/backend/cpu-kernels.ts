// Faster float32 kernels for tfjs's JavaScript 'cpu' backend, registered over the stock ones (which stay as the
// fallback for every other dtype). Measured on stories260K forward+backward [10, 64]: the stock kernels spend most
// of their time in per-element index arithmetic — broadcasting binary ops allocate a coordinate array per element,
// Softmax is composed of broadcasting ops, BatchMatMul indexes both operands through strides. These versions:
// - Add/Sub/Multiply/RealDiv: broadcast by per-input strides (0 on broadcast axes) with an odometer over the outer
//   axes and a tight loop over the last axis;
// - Transpose: an odometer over the output with permuted input strides;
// - Softmax (last axis): one fused pass per row (max, exp, sum, scale), the same arithmetic as tfjs;
// - BatchMatMul: packs op(A) as [M, K] and op(B)ᵀ as [N, K], then dot products of contiguous rows in 2×4 blocks; batch dims broadcast like tfjs's.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

interface CpuBackend {
  data: { get(id: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

function values(backend: CpuBackend, t: tf.TensorInfo): Float32Array {
  return backend.data.get(t.dataId).values as Float32Array;
}

function sizeOf(shape: number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** Contiguous strides of `shape` padded to `rank`, 0 where the axis is broadcast (size 1 against a larger out dim). */
function broadcastStrides(shape: number[], out: number[]): number[] {
  const rank = out.length;
  const padded = [...Array.from({ length: rank - shape.length }, () => 1), ...shape];
  const strides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let i = rank - 1; i >= 0; i--) {
    strides[i] = padded[i] === 1 && out[i] !== 1 ? 0 : s;
    s *= padded[i]!;
  }
  return strides;
}

const enum Op { Add, Sub, Mul, Div }

function binary(op: Op, a: Float32Array, aShape: number[], b: Float32Array, bShape: number[]): { out: Float32Array; shape: number[] } {
  const shape = tf.backend_util.assertAndGetBroadcastShape(aShape, bShape);
  const n = sizeOf(shape);
  const out = new Float32Array(n);
  if (n === 0) return { out, shape };
  const rank = shape.length;
  if (rank === 0) {
    out[0] = op === Op.Add ? a[0]! + b[0]! : op === Op.Sub ? a[0]! - b[0]! : op === Op.Mul ? a[0]! * b[0]! : a[0]! / b[0]!;
    return { out, shape };
  }
  const sa = broadcastStrides(aShape, shape), sb = broadcastStrides(bShape, shape);
  const inner = shape[rank - 1]!;
  const ia = sa[rank - 1]!, ib = sb[rank - 1]!;
  const idx = new Array<number>(rank).fill(0);
  let offA = 0, offB = 0;
  for (let o = 0; o < n; o += inner) {
    switch (op) {
      case Op.Add: for (let j = 0; j < inner; j++) out[o + j] = a[offA + j * ia]! + b[offB + j * ib]!; break;
      case Op.Sub: for (let j = 0; j < inner; j++) out[o + j] = a[offA + j * ia]! - b[offB + j * ib]!; break;
      case Op.Mul: for (let j = 0; j < inner; j++) out[o + j] = a[offA + j * ia]! * b[offB + j * ib]!; break;
      case Op.Div: for (let j = 0; j < inner; j++) out[o + j] = a[offA + j * ia]! / b[offB + j * ib]!; break;
    }
    // Odometer over the outer axes.
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]!++;
      offA += sa[d]!;
      offB += sb[d]!;
      if (idx[d]! < shape[d]!) break;
      offA -= sa[d]! * shape[d]!;
      offB -= sb[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return { out, shape };
}

function softmaxRows(x: Float32Array, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += cols) {
    let max = -Infinity;
    for (let j = 0; j < cols; j++) if (x[o + j]! > max) max = x[o + j]!;
    let sum = 0;
    for (let j = 0; j < cols; j++) {
      const e = Math.exp(x[o + j]! - max);
      out[o + j] = e;
      sum += e;
    }
    // tfjs divides by the float32 sum.
    const s = Math.fround(sum);
    for (let j = 0; j < cols; j++) out[o + j] = out[o + j]! / s;
  }
  return out;
}

/** Copies an [r, c] matrix at `src[off..]` into `dst` as [c, r]. */
function transposeInto(src: Float32Array, off: number, r: number, c: number, dst: Float32Array): void {
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) dst[j * r + i] = src[off + i * c + j]!;
}

function matmul(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], tA: boolean, tB: boolean): { out: Float32Array; shape: number[] } {
  const ra = aShape.length, rb = bShape.length;
  const M = tA ? aShape[ra - 1]! : aShape[ra - 2]!;
  const K = tA ? aShape[ra - 2]! : aShape[ra - 1]!;
  const N = tB ? bShape[rb - 2]! : bShape[rb - 1]!;
  const Kb = tB ? bShape[rb - 1]! : bShape[rb - 2]!;
  if (K !== Kb) throw new Error(`matMul: inner dimensions ${K} and ${Kb} differ (${aShape} x ${bShape}, transposeA=${tA}, transposeB=${tB})`);
  const aBatch = aShape.slice(0, -2), bBatch = bShape.slice(0, -2);
  const batch = tf.backend_util.assertAndGetBroadcastShape(aBatch, bBatch);
  const nb = sizeOf(batch);
  const sa = broadcastStrides(aBatch, batch).map((s) => s * M * K);
  const sb = broadcastStrides(bBatch, batch).map((s) => s * K * N);
  const out = new Float32Array(nb * M * N);
  const A = new Float32Array(M * K), Bt = new Float32Array(N * K);
  const idx = new Array<number>(batch.length).fill(0);
  let offA = 0, offB = 0;
  let lastA = -1, lastB = -1;
  for (let bi = 0; bi < nb; bi++) {
    if (offA !== lastA) {
      if (tA) transposeInto(a, offA, K, M, A); else A.set(a.subarray(offA, offA + M * K));
      lastA = offA;
    }
    if (offB !== lastB) {
      if (tB) Bt.set(b.subarray(offB, offB + N * K)); else transposeInto(b, offB, K, N, Bt);
      lastB = offB;
    }
    gemmRows(A, Bt, out, bi * M * N, M, N, K);
    for (let d = batch.length - 1; d >= 0; d--) {
      idx[d]!++;
      offA += sa[d]!;
      offB += sb[d]!;
      if (idx[d]! < batch[d]!) break;
      offA -= sa[d]! * batch[d]!;
      offB -= sb[d]! * batch[d]!;
      idx[d] = 0;
    }
  }
  return { out, shape: [...batch, M, N] };
}

/** out[base + i·N + j] = Σ_k A[i·K + k]·Bt[j·K + k]; 2×4 register blocks (8 accumulators, 6 loads per 8 FMAs). */
function gemmRows(A: Float32Array, Bt: Float32Array, out: Float32Array, base: number, M: number, N: number, K: number): void {
  let i = 0;
  for (; i + 1 < M; i += 2) {
    const a0 = i * K, a1 = a0 + K;
    const r0 = base + i * N, r1 = r0 + N;
    let j = 0;
    for (; j + 3 < N; j += 4) {
      const b0 = j * K, b1 = b0 + K, b2 = b1 + K, b3 = b2 + K;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let k = 0; k < K; k++) {
        const x0 = A[a0 + k]!, x1 = A[a1 + k]!;
        const y0 = Bt[b0 + k]!, y1 = Bt[b1 + k]!, y2 = Bt[b2 + k]!, y3 = Bt[b3 + k]!;
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
      }
      out[r0 + j] = s00; out[r0 + j + 1] = s01; out[r0 + j + 2] = s02; out[r0 + j + 3] = s03;
      out[r1 + j] = s10; out[r1 + j + 1] = s11; out[r1 + j + 2] = s12; out[r1 + j + 3] = s13;
    }
    for (; j < N; j++) {
      const b0 = j * K;
      let s0 = 0, s1 = 0;
      for (let k = 0; k < K; k++) { const y = Bt[b0 + k]!; s0 += A[a0 + k]! * y; s1 += A[a1 + k]! * y; }
      out[r0 + j] = s0; out[r1 + j] = s1;
    }
  }
  for (; i < M; i++) {
    const a0 = i * K, r0 = base + i * N;
    for (let j = 0; j < N; j++) {
      const b0 = j * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += A[a0 + k]! * Bt[b0 + k]!;
      out[r0 + j] = s;
    }
  }
}

function transpose(x: Float32Array, shape: number[], perm: number[]): { out: Float32Array; shape: number[] } {
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]!);
  const out = new Float32Array(x.length);
  if (x.length === 0) return { out, shape: outShape };
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let i = rank - 1; i >= 0; i--) { inStrides[i] = s; s *= shape[i]!; }
  // Input stride of each output axis; walk the output in order with an odometer.
  const st = perm.map((p) => inStrides[p]!);
  const inner = outShape[rank - 1]!, si = st[rank - 1]!;
  const idx = new Array<number>(rank).fill(0);
  let off = 0;
  for (let o = 0; o < x.length; o += inner) {
    for (let j = 0; j < inner; j++) out[o + j] = x[off + j * si]!;
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]!++;
      off += st[d]!;
      if (idx[d]! < outShape[d]!) break;
      off -= st[d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
  return { out, shape: outShape };
}

let registered = false;

/** Replaces the cpu backend's float32 Add/Sub/Multiply/RealDiv/Softmax/Transpose/BatchMatMul kernels (idempotent). */
export function registerCpuKernels(): void {
  if (registered) return;
  registered = true;
  const override = (name: string, fast: (args: KernelArgs, backend: CpuBackend) => tf.TensorInfo | null) => {
    const original = tf.getKernel(name, 'cpu');
    if (!original) return;
    tf.unregisterKernel(name, 'cpu');
    tf.registerKernel({
      kernelName: name,
      backendName: 'cpu',
      kernelFunc: ((args: KernelArgs) => fast(args, args.backend as CpuBackend) ?? original.kernelFunc(args as never)) as tf.KernelFunc,
    });
  };
  const binaryKernel = (op: Op) => (args: KernelArgs, backend: CpuBackend) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
    const r = binary(op, values(backend, a), a.shape, values(backend, b), b.shape);
    return backend.makeTensorInfo(r.shape, 'float32', r.out);
  };
  override('Add', binaryKernel(Op.Add));
  override('Sub', binaryKernel(Op.Sub));
  override('Multiply', binaryKernel(Op.Mul));
  override('RealDiv', binaryKernel(Op.Div));
  override('Softmax', (args, backend) => {
    const { logits } = args.inputs as { logits: tf.TensorInfo };
    const dim = (args.attrs as { dim: number }).dim;
    const rank = logits.shape.length;
    if (logits.dtype !== 'float32' || rank === 0 || (dim !== -1 && dim !== rank - 1)) return null;
    return backend.makeTensorInfo(logits.shape, 'float32', softmaxRows(values(backend, logits), logits.shape[rank - 1]!));
  });
  override('Transpose', (args, backend) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const perm = (args.attrs as unknown as tf.TransposeAttrs).perm;
    if (x.dtype !== 'float32' || x.shape.length === 0) return null;
    const r = transpose(values(backend, x), x.shape, perm);
    return backend.makeTensorInfo(r.shape, 'float32', r.out);
  });
  override('BatchMatMul', (args, backend) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return null;
    const r = matmul(values(backend, a), a.shape, values(backend, b), b.shape, transposeA, transposeB);
    return backend.makeTensorInfo(r.shape, 'float32', r.out);
  });
}
