// Gradient definitions for the tfjs kernels lopper differentiates through.
//
// Why this file exists: @tensorflow/tfjs-core's Node entry (dist/tf-core.node.js) registers no gradients at all —
// the union package @tensorflow/tfjs imports dist/register_all_gradients, which is an extension-less ESM tree that
// Node cannot load from tfjs-core alone. So tf.grads/variableGrads fail with "gradient function not found for Neg".
// These configs follow tfjs-core's own gradients (src/gradients/*_grad.ts, Apache-2.0) for the kernels a LLaMA
// forward, a LoRA adapter and the usual losses use; broadcasting binary ops reduce their gradient back to the
// input shape. registerGradients() only fills kernels that have no gradient yet, so a tfjs build that ships its
// own registrations keeps them.
import * as tf from '@tensorflow/tfjs-core';
import { GRADIENT_OPERAND_ATTR } from '../backend/kernels/register.js';

type T = tf.Tensor;
type GradMap = Record<string, () => T>;

/** Sums `g` over the axes along which `shape` was broadcast to g's shape, then reshapes to `shape`. */
function unbroadcast(g: T, shape: number[]): T {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const axes = tf.backend_util.getReductionAxes(shape, g.shape);
  const lead = g.shape.length - shape.length;
  const all = [...Array.from({ length: lead }, (_, i) => i), ...axes.filter((a) => a >= lead)];
  const uniq = [...new Set(all)];
  const r = uniq.length > 0 ? tf.sum(g, uniq) : g;
  return tf.reshape(r, shape);
}

function axesOf(axis: number | number[] | undefined, rank: number): number[] {
  return tf.util.parseAxisParam(axis ?? null as unknown as number[], Array.from({ length: rank }, () => 1));
}

/** dy with the reduced axes of `xShape` restored as size-1 dims (for reductions without keepDims). */
function expandReduced(dy: T, xShape: number[], axes: number[]): T {
  const shape = xShape.map((d, i) => (axes.includes(i) ? 1 : d));
  return tf.reshape(dy, shape);
}

function floatLike(x: T, v: T): T {
  return tf.cast(v, x.dtype === 'int32' || x.dtype === 'bool' ? 'float32' : x.dtype);
}

const configs: tf.GradConfig[] = [
  { kernelName: 'Identity', gradFunc: (dy) => ({ x: () => (dy as T).clone() }) },
  { kernelName: 'Cast', gradFunc: (dy) => ({ x: () => (dy as T).clone() }) },
  { kernelName: 'Neg', gradFunc: (dy) => ({ x: () => tf.neg(dy as T) }) },
  {
    kernelName: 'Add', inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({ a: () => unbroadcast(dy as T, a!.shape), b: () => unbroadcast(dy as T, b!.shape) }),
  },
  {
    kernelName: 'AddN', saveAllInputs: true,
    gradFunc: (dy, saved) => {
      const out: GradMap = {};
      saved.forEach((_, i) => { out[i] = () => (dy as T).clone(); });
      return out;
    },
  },
  {
    kernelName: 'Sub', inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({ a: () => unbroadcast(dy as T, a!.shape), b: () => tf.neg(unbroadcast(dy as T, b!.shape)) }),
  },
  {
    kernelName: 'Multiply', inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({
      a: () => unbroadcast(tf.mul(dy as T, floatLike(a!, b!)), a!.shape),
      b: () => unbroadcast(tf.mul(dy as T, floatLike(b!, a!)), b!.shape),
    }),
  },
  {
    kernelName: 'RealDiv', inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({
      a: () => unbroadcast(tf.div(dy as T, floatLike(a!, b!)), a!.shape),
      b: () => unbroadcast(tf.neg(tf.div(tf.mul(dy as T, floatLike(b!, a!)), tf.square(floatLike(b!, b!)))), b!.shape),
    }),
  },
  {
    kernelName: 'Maximum', inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({
      a: () => unbroadcast(tf.mul(dy as T, tf.cast(tf.greaterEqual(a!, b!), 'float32')), a!.shape),
      b: () => unbroadcast(tf.mul(dy as T, tf.cast(tf.less(a!, b!), 'float32')), b!.shape),
    }),
  },
  {
    kernelName: 'Minimum', inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({
      a: () => unbroadcast(tf.mul(dy as T, tf.cast(tf.lessEqual(a!, b!), 'float32')), a!.shape),
      b: () => unbroadcast(tf.mul(dy as T, tf.cast(tf.greater(a!, b!), 'float32')), b!.shape),
    }),
  },
  {
    kernelName: 'SquaredDifference', inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => {
      const two = () => tf.mul(2, tf.sub(a!, b!));
      return { a: () => unbroadcast(tf.mul(dy as T, two()), a!.shape), b: () => unbroadcast(tf.neg(tf.mul(dy as T, two())), b!.shape) };
    },
  },
  {
    kernelName: 'Pow', inputsToSave: ['a', 'b'], outputsToSave: [true],
    gradFunc: (dy, [a, b, y]) => ({
      a: () => unbroadcast(tf.mul(dy as T, tf.mul(floatLike(a!, b!), tf.pow(a!, tf.sub(floatLike(b!, b!), 1)))), a!.shape),
      // d/db a^b = a^b · log a, defined as 0 where a <= 0 (as tfjs does).
      b: () => unbroadcast(tf.mul(dy as T, tf.mul(y!, tf.where(tf.greater(a!, 0), tf.log(a!), tf.zerosLike(a!)))), b!.shape),
    }),
  },
  { kernelName: 'Square', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as T, tf.mul(floatLike(x!, x!), 2)) }) },
  { kernelName: 'Sqrt', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.div(dy as T, tf.mul(tf.sqrt(floatLike(x!, x!)), 2)) }) },
  {
    kernelName: 'Rsqrt', inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.neg(tf.div(dy as T, tf.mul(tf.pow(x!, 1.5), 2))) }),
  },
  { kernelName: 'Exp', outputsToSave: [true], gradFunc: (dy, [y]) => ({ x: () => tf.mul(dy as T, y!) }) },
  { kernelName: 'Log', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.div(dy as T, floatLike(x!, x!)) }) },
  { kernelName: 'Sigmoid', outputsToSave: [true], gradFunc: (dy, [y]) => ({ x: () => tf.mul(dy as T, tf.mul(y!, tf.sub(1, y!))) }) },
  { kernelName: 'Tanh', outputsToSave: [true], gradFunc: (dy, [y]) => ({ x: () => tf.mul(dy as T, tf.sub(1, tf.square(y!))) }) },
  { kernelName: 'Relu', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as T, tf.step(floatLike(x!, x!))) }) },
  { kernelName: 'Abs', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as T, tf.sign(floatLike(x!, x!))) }) },
  {
    kernelName: 'Erf', inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as T, tf.mul(2 / Math.sqrt(Math.PI), tf.exp(tf.neg(tf.square(x!))))) }),
  },
  {
    kernelName: 'ClipByValue', inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const { clipValueMin, clipValueMax } = attrs as unknown as tf.ClipByValueAttrs;
      return { x: () => tf.where(tf.logicalAnd(tf.greaterEqual(x!, clipValueMin), tf.lessEqual(x!, clipValueMax)), dy as T, tf.zerosLike(dy as T)) };
    },
  },
  {
    kernelName: 'Select', inputsToSave: ['condition'],
    gradFunc: (dy, [c]) => ({
      condition: () => tf.cast(tf.zerosLike(c!), 'float32'),
      t: () => tf.mul(dy as T, tf.cast(c!, (dy as T).dtype)),
      e: () => tf.mul(dy as T, tf.cast(tf.logicalNot(c!), (dy as T).dtype)),
    }),
  },
  {
    kernelName: 'Sum', inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const axes = axesOf((attrs as unknown as tf.SumAttrs).axis, x!.rank);
      return { x: () => tf.mul(expandReduced(dy as T, x!.shape, axes), tf.ones(x!.shape, 'float32')) };
    },
  },
  {
    kernelName: 'Mean', inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const axes = axesOf((attrs as unknown as tf.MeanAttrs).axis, x!.rank);
      const n = axes.reduce((p, a) => p * x!.shape[a]!, 1);
      return { x: () => tf.div(tf.mul(expandReduced(dy as T, x!.shape, axes), tf.ones(x!.shape, 'float32')), n) };
    },
  },
  {
    kernelName: 'Max', inputsToSave: ['x'], outputsToSave: [true],
    gradFunc: (dy, [x, y], attrs) => {
      const axes = axesOf((attrs as unknown as tf.MaxAttrs).reductionIndices, x!.rank);
      return { x: () => tf.mul(expandReduced(dy as T, x!.shape, axes), tf.cast(tf.equal(x!, expandReduced(y!, x!.shape, axes)), 'float32')) };
    },
  },
  {
    kernelName: 'Min', inputsToSave: ['x'], outputsToSave: [true],
    gradFunc: (dy, [x, y], attrs) => {
      const axes = axesOf((attrs as unknown as tf.MinAttrs).axis, x!.rank);
      return { x: () => tf.mul(expandReduced(dy as T, x!.shape, axes), tf.cast(tf.equal(x!, expandReduced(y!, x!.shape, axes)), 'float32')) };
    },
  },
  {
    kernelName: 'Softmax', outputsToSave: [true],
    gradFunc: (dy, [y], attrs) => {
      const dim = (attrs as unknown as tf.SoftmaxAttrs).dim;
      return {
        logits: () => {
          const dyY = tf.mul(dy as T, y!);
          return tf.sub(dyY, tf.mul(tf.sum(dyY, [dim], true), y!));
        },
      };
    },
  },
  {
    kernelName: 'LogSoftmax', outputsToSave: [true],
    gradFunc: (dy, [y], attrs) => {
      const axis = (attrs as unknown as tf.LogSoftmaxAttrs).axis;
      return { logits: () => tf.sub(dy as T, tf.mul(tf.sum(dy as T, axis, true), tf.exp(y!))) };
    },
  },
  {
    kernelName: 'BatchMatMul', inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b], attrs) => {
      const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
      const d = dy as T;
      // The attribute tells precision mixed's tensor-core kernel which operand is the (small) incoming gradient, the
      // one to scale before rounding to f16; other kernels ignore it.
      const mm = (x: T, y: T, tx: boolean, ty: boolean, gradient: 'a' | 'b') => tf.engine().runKernel('BatchMatMul',
        { a: x, b: y }, { transposeA: tx, transposeB: ty, [GRADIENT_OPERAND_ATTR]: gradient } as unknown as tf.NamedAttrMap) as T;
      let da: () => T, db: () => T;
      if (!transposeA && !transposeB) { da = () => mm(d, b!, false, true, 'a'); db = () => mm(a!, d, true, false, 'b'); }
      else if (!transposeA && transposeB) { da = () => mm(d, b!, false, false, 'a'); db = () => mm(d, a!, true, false, 'a'); }
      else if (transposeA && !transposeB) { da = () => mm(b!, d, false, true, 'b'); db = () => mm(a!, d, false, false, 'b'); }
      else { da = () => mm(b!, d, true, true, 'b'); db = () => mm(d, a!, true, true, 'a'); }
      // Batch dims broadcast in the forward pass are summed back.
      return { a: () => unbroadcast(da(), a!.shape), b: () => unbroadcast(db(), b!.shape) };
    },
  },
  { kernelName: 'Reshape', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.reshape(dy as T, x!.shape) }) },
  { kernelName: 'ExpandDims', inputsToSave: ['input'], gradFunc: (dy, [x]) => ({ input: () => tf.reshape(dy as T, x!.shape) }) },
  {
    kernelName: 'Transpose',
    gradFunc: (dy, _saved, attrs) => {
      const perm = (attrs as unknown as tf.TransposeAttrs).perm;
      return { x: () => tf.transpose(dy as T, tf.backend_util.getUndoAxesPermutation(perm)) };
    },
  },
  {
    kernelName: 'Slice', inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const { begin, size } = attrs as unknown as tf.SliceAttrs;
      const [b, s] = tf.slice_util.parseSliceParams(x!, begin, size);
      const pads = x!.shape.map((d, i) => [b[i]!, d - b[i]! - s[i]!] as [number, number]);
      return { x: () => tf.pad(dy as T, pads) };
    },
  },
  {
    kernelName: 'PadV2', inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const pads = (attrs as unknown as tf.PadV2Attrs).paddings;
      return { x: () => tf.slice(dy as T, pads.map((p) => p[0]), x!.shape) };
    },
  },
  {
    kernelName: 'Concat', saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => {
      const axis = tf.util.parseAxisParam((attrs as unknown as tf.ConcatAttrs).axis, saved[0]!.shape)[0]!;
      const sizes = saved.map((t) => t.shape[axis]!);
      const parts = tf.split(dy as T, sizes, axis);
      const out: GradMap = {};
      parts.forEach((p, i) => { out[i] = () => p; });
      return out;
    },
  },
  {
    kernelName: 'Pack', saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => {
      const parts = tf.unstack(dy as T, (attrs as unknown as tf.PackAttrs).axis);
      const out: GradMap = {};
      saved.forEach((_, i) => { out[i] = () => parts[i]!; });
      return out;
    },
  },
  {
    kernelName: 'SplitV',
    gradFunc: (dy, _saved, attrs) => ({ x: () => tf.concat(dy as T[], (attrs as unknown as tf.SplitVAttrs).axis) }),
  },
  {
    kernelName: 'Tile', inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const reps = (attrs as unknown as tf.TileAttrs).reps;
      return {
        x: () => {
          // Output index along axis i is rep·s_i + j: view dy as [r0, s0, r1, s1, …] and sum the rep axes.
          const split: number[] = [];
          x!.shape.forEach((s, i) => split.push(reps[i]!, s));
          return tf.reshape(tf.sum(tf.reshape(dy as T, split), x!.shape.map((_, i) => 2 * i)), x!.shape);
        },
      };
    },
  },
  {
    kernelName: 'BroadcastTo',
    gradFunc: (dy, _saved, attrs) => ({ x: () => unbroadcast(dy as T, (attrs as unknown as tf.BroadCastToAttrs).inputShape) }),
  },
  {
    kernelName: 'GatherV2', inputsToSave: ['x', 'indices'],
    gradFunc: (dy, [x, indices], attrs) => {
      const { axis, batchDims } = attrs as unknown as tf.GatherV2Attrs;
      if (batchDims !== 0) throw new Error('GatherV2 gradient: batchDims != 0 is not supported');
      const ax = tf.util.parseAxisParam(axis, x!.shape)[0]!;
      return {
        x: () => {
          if (ax === 0 && x!.rank === 2 && tf.getBackend() !== 'webgpu') {
            // Embedding rows: dE = onehot(ids)ᵀ · dy. tfjs-cpu's UnsortedSegmentSum loops over every segment
            // (O(V·N·H) with a temporary per segment: seconds for a 512-token vocabulary); one matMul per chunk of
            // ids is the same sum at BLAS speed. WebGPU keeps UnsortedSegmentSum (atomics, O(N·H)).
            const [V, H] = x!.shape as [number, number];
            const n = indices!.size;
            const ids = tf.reshape(indices!, [n]) as tf.Tensor1D;
            const rows = tf.reshape(dy as T, [n, H]) as tf.Tensor2D;
            const chunk = Math.max(1, Math.floor((1 << 24) / V));
            let acc: T | null = null;
            for (let s = 0; s < n; s += chunk) {
              const c = Math.min(chunk, n - s);
              // int32 oneHot then cast: tfjs-backend-wasm 4.22's OneHot returns zeros when asked for float32 directly.
              const oh = tf.cast(tf.oneHot(n <= chunk ? ids : tf.slice(ids, [s], [c]), V), 'float32');
              const part = tf.matMul(oh, n <= chunk ? rows : tf.slice(rows, [s, 0], [c, H]), true, false);
              acc = acc ? tf.add(acc, part) : part;
            }
            return acc ?? tf.zeros([V, H]);
          }
          const outer = x!.shape.slice(0, ax);
          const inner = x!.shape.slice(ax + 1);
          const n = indices!.size;
          const values = tf.reshape(dy as T, [...outer, n, ...inner]);
          const perm = [outer.length, ...outer.map((_, i) => i), ...inner.map((_, i) => outer.length + 1 + i)];
          const summed = tf.unsortedSegmentSum(tf.transpose(values, perm), tf.reshape(indices!, [n]) as tf.Tensor1D, x!.shape[ax]!);
          return tf.transpose(summed, tf.backend_util.getUndoAxesPermutation(perm));
        },
        indices: () => tf.cast(tf.zerosLike(indices!), 'float32'),
      };
    },
  },
];

let registered = false;

/** Registers every gradient above whose kernel has none yet. Idempotent. */
export function registerGradients(): void {
  if (registered) return;
  registered = true;
  for (const c of configs) if (!tf.getGradient(c.kernelName)) tf.registerGradient(c);
}

/** Kernel names this module provides gradients for. */
export const gradientKernels: readonly string[] = configs.map((c) => c.kernelName);
