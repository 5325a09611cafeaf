// Faster float32 kernels for tfjs's JavaScript 'cpu' backend, registered over the stock ones (which stay as the
// fallback for every other dtype). Measured on stories260K forward+backward [10, 64]: the stock kernels spend most
// of their time in per-element index arithmetic — broadcasting binary ops allocate a coordinate array per element,
// Softmax is composed of broadcasting ops, BatchMatMul indexes both operands through strides. These versions:
// - Add/Sub/Multiply/RealDiv: broadcast by per-input strides (0 on broadcast axes) with an odometer over the outer
//   axes and a tight loop over the last axis;
// - Softmax (last axis): one fused pass per row (max, exp, sum, scale), the same arithmetic as tfjs;
// - BatchMatMul: packs op(A) as [M, K] and op(B)ᵀ as [N, K], then dot products of contiguous rows, 4 columns at a
//   time; batch dims broadcast like tfjs's.
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
    const base = bi * M * N;
    for (let i = 0; i < M; i++) {
      const ai = i * K;
      const row = base + i * N;
      let j = 0;
      for (; j + 3 < N; j += 4) {
        const b0 = j * K, b1 = b0 + K, b2 = b1 + K, b3 = b2 + K;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let k = 0; k < K; k++) {
          const av = A[ai + k]!;
          s0 += av * Bt[b0 + k]!;
          s1 += av * Bt[b1 + k]!;
          s2 += av * Bt[b2 + k]!;
          s3 += av * Bt[b3 + k]!;
        }
        out[row + j] = s0; out[row + j + 1] = s1; out[row + j + 2] = s2; out[row + j + 3] = s3;
      }
      for (; j < N; j++) {
        const b0 = j * K;
        let s = 0;
        for (let k = 0; k < K; k++) s += A[ai + k]! * Bt[b0 + k]!;
        out[row + j] = s;
      }
    }
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

let registered = false;

/** Replaces the cpu backend's float32 Add/Sub/Multiply/RealDiv/Softmax/BatchMatMul kernels (idempotent). */
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
  override('BatchMatMul', (args, backend) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return null;
    const r = matmul(values(backend, a), a.shape, values(backend, b), b.shape, transposeA, transposeB);
    return backend.makeTensorInfo(r.shape, 'float32', r.out);
  });
}
