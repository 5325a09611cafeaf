// Fused float32 WebGPU kernels for the LLaMA forward and backward, active on the 'webgpu' backend under precision
// mixed (webgpu.ts enables them; tests may enable them on float32 devices). Each tfjs op costs a dispatch, a uniform
// buffer, a bind group and a round trip of its operands through device memory; these kernels replace
//   RMSNorm  forward and backward (recomputing the per-row scale in the backward rather than storing it),
//   SwiGLU   forward and both input gradients (only g and u are kept for the backward, not σ(g) and silu(g)),
//   RoPE     rotate_half rotation fused with the [B, T, n, D] → [B, n, T, D] head transpose, and its inverse,
//   softmax  the attention's scale, causal mask and softmax, and its gradient from the saved probabilities,
// with one kernel per output. They are registered as tfjs kernels and wrapped in tf.customGrad, so autodiff sees
// one node per fused op. The float32 precision keeps llama.ts's composite ops (bit-for-bit today's results).
import * as tf from '@tensorflow/tfjs-core';
import {
  causalSoftmaxGradProgram,
  causalSoftmaxProgram,
  columnSumProgram,
  ropeFromHeadsGradProgram,
  ropeToHeadsProgram,
  rmsNormGradInputProgram,
  rmsNormGradWeightPartialProgram,
  rmsNormGradWeightRowsPerGroup,
  rmsNormProgram,
  swigluInputs,
  swigluProgram,
  type FusedProgram,
  type SwigluPart,
} from './fused-programs.js';

export const FUSED_KERNELS = {
  rmsNorm: 'LopperRmsNorm',
  rmsNormGradInput: 'LopperRmsNormGradInput',
  rmsNormGradWeight: 'LopperRmsNormGradWeight',
  swiglu: 'LopperSwiglu',
  swigluGradGate: 'LopperSwigluGradGate',
  swigluGradUp: 'LopperSwigluGradUp',
  ropeToHeads: 'LopperRopeToHeads',
  ropeFromHeadsGrad: 'LopperRopeFromHeadsGrad',
  causalSoftmax: 'LopperCausalSoftmax',
  causalSoftmaxGrad: 'LopperCausalSoftmaxGrad',
} as const;

interface ProgramUniform {
  type: 'float32' | 'int32' | 'uint32';
  data: number[];
}

/** The part of tfjs-backend-webgpu's WebGPUBackend these kernels use. */
interface FusedBackend {
  runWebGPUProgram(program: FusedProgram, inputs: tf.TensorInfo[], outputDtype: 'float32', uniforms?: ProgramUniform[]): tf.TensorInfo;
  disposeData(dataId: object): boolean;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap };

let enabled = false;
let registered = false;

/**
 * Turns the fused kernels on or off for later forward passes (they only run while tfjs's backend is 'webgpu').
 * initWebGpu sets it from the precision; tests turn it on for float32 devices such as lavapipe.
 */
export function setFusedOpsEnabled(on: boolean): void {
  if (on) registerFusedKernels();
  enabled = on;
}

export function fusedOpsActive(): boolean {
  return enabled && tf.getBackend() === 'webgpu';
}

function float32Inputs(kernel: string, args: KernelArgs, names: string[]): tf.TensorInfo[] {
  return names.map((name) => {
    const t = args.inputs[name];
    if (!t) throw new Error(`${kernel}: missing input ${name}`);
    if (t.dtype !== 'float32') throw new Error(`${kernel}: input ${name} is ${t.dtype}; the fused kernels are float32 only`);
    return t;
  });
}

function epsUniform(args: KernelArgs): ProgramUniform {
  return { type: 'float32', data: [Number(args.attrs?.eps)] };
}

function rmsNormKernel(args: KernelArgs): tf.TensorInfo {
  const [x, w] = float32Inputs(FUSED_KERNELS.rmsNorm, args, ['x', 'w']) as [tf.TensorInfo, tf.TensorInfo];
  const [rows, cols] = x.shape as [number, number];
  return (args.backend as FusedBackend).runWebGPUProgram(rmsNormProgram(rows, cols), [x, w], 'float32', [epsUniform(args)]);
}

function rmsNormGradInputKernel(args: KernelArgs): tf.TensorInfo {
  const inputs = float32Inputs(FUSED_KERNELS.rmsNormGradInput, args, ['x', 'w', 'dy']);
  const [rows, cols] = inputs[0]!.shape as [number, number];
  return (args.backend as FusedBackend).runWebGPUProgram(rmsNormGradInputProgram(rows, cols), inputs, 'float32', [epsUniform(args)]);
}

function rmsNormGradWeightKernel(args: KernelArgs): tf.TensorInfo {
  const inputs = float32Inputs(FUSED_KERNELS.rmsNormGradWeight, args, ['x', 'dy']);
  const [rows, cols] = inputs[0]!.shape as [number, number];
  const backend = args.backend as FusedBackend;
  const rowsPerGroup = rmsNormGradWeightRowsPerGroup(rows);
  const partial = backend.runWebGPUProgram(rmsNormGradWeightPartialProgram(rows, cols, rowsPerGroup), inputs, 'float32',
    [epsUniform(args), { type: 'int32', data: [rowsPerGroup] }]);
  try {
    return backend.runWebGPUProgram(columnSumProgram(cols), [partial], 'float32');
  } finally {
    // Freed once the submitted work that reads it has run (tfjs defers disposal of buffers in flight).
    backend.disposeData(partial.dataId);
  }
}

function swigluKernel(part: SwigluPart, name: string) {
  return (args: KernelArgs): tf.TensorInfo => {
    const inputs = float32Inputs(name, args, swigluInputs[part]);
    return (args.backend as FusedBackend).runWebGPUProgram(swigluProgram(inputs[0]!.shape, part), inputs, 'float32');
  };
}

function ropeToHeadsKernel(args: KernelArgs): tf.TensorInfo {
  const inputs = float32Inputs(FUSED_KERNELS.ropeToHeads, args, ['x', 'cosTable', 'sinTable']);
  const [B, T, n, D] = inputs[0]!.shape as [number, number, number, number];
  return (args.backend as FusedBackend).runWebGPUProgram(ropeToHeadsProgram(B, T, n, D), inputs, 'float32');
}

function ropeFromHeadsGradKernel(args: KernelArgs): tf.TensorInfo {
  const inputs = float32Inputs(FUSED_KERNELS.ropeFromHeadsGrad, args, ['dy', 'cosTable', 'sinTable']);
  const [B, n, T, D] = inputs[0]!.shape as [number, number, number, number];
  return (args.backend as FusedBackend).runWebGPUProgram(ropeFromHeadsGradProgram(B, T, n, D), inputs, 'float32');
}

function scaleUniform(args: KernelArgs): ProgramUniform {
  return { type: 'float32', data: [Number(args.attrs?.scale)] };
}

function causalSoftmaxKernel(args: KernelArgs): tf.TensorInfo {
  const [scores] = float32Inputs(FUSED_KERNELS.causalSoftmax, args, ['scores']) as [tf.TensorInfo];
  const [rows, cols] = scores.shape as [number, number];
  return (args.backend as FusedBackend).runWebGPUProgram(causalSoftmaxProgram(rows, cols), [scores], 'float32', [scaleUniform(args)]);
}

function causalSoftmaxGradKernel(args: KernelArgs): tf.TensorInfo {
  const inputs = float32Inputs(FUSED_KERNELS.causalSoftmaxGrad, args, ['p', 'dy']);
  const [rows, cols] = inputs[0]!.shape as [number, number];
  return (args.backend as FusedBackend).runWebGPUProgram(causalSoftmaxGradProgram(rows, cols), inputs, 'float32', [scaleUniform(args)]);
}

function registerFusedKernels(): void {
  if (registered) return;
  const kernels: Array<[string, (args: KernelArgs) => tf.TensorInfo]> = [
    [FUSED_KERNELS.rmsNorm, rmsNormKernel],
    [FUSED_KERNELS.rmsNormGradInput, rmsNormGradInputKernel],
    [FUSED_KERNELS.rmsNormGradWeight, rmsNormGradWeightKernel],
    [FUSED_KERNELS.swiglu, swigluKernel('forward', FUSED_KERNELS.swiglu)],
    [FUSED_KERNELS.swigluGradGate, swigluKernel('gradGate', FUSED_KERNELS.swigluGradGate)],
    [FUSED_KERNELS.swigluGradUp, swigluKernel('gradUp', FUSED_KERNELS.swigluGradUp)],
    [FUSED_KERNELS.ropeToHeads, ropeToHeadsKernel],
    [FUSED_KERNELS.ropeFromHeadsGrad, ropeFromHeadsGradKernel],
    [FUSED_KERNELS.causalSoftmax, causalSoftmaxKernel],
    [FUSED_KERNELS.causalSoftmaxGrad, causalSoftmaxGradKernel],
  ];
  for (const [kernelName, kernelFunc] of kernels) {
    // The kernel registry outlives backends: a second device (disposeWebGpu, then initWebGpu) reuses the entries.
    if (tf.getKernel(kernelName, 'webgpu') === undefined) {
      tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
    }
  }
  registered = true;
}

function run(kernel: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}): tf.Tensor {
  return tf.engine().runKernel(kernel, inputs, attrs) as tf.Tensor;
}

type Save = tf.GradSaveFunc;
const customGrad = <F>(f: F) => tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown;

const rmsNormFns = new Map<number, (x: tf.Tensor2D, w: tf.Tensor1D) => tf.Tensor2D>();

/** RMSNorm x·rsqrt(mean(x²) + eps)·w of x [rows, H] with w [H]: one dispatch forward, three backward. */
export function fusedRmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  let f = rmsNormFns.get(eps);
  if (!f) {
    f = customGrad((xx: tf.Tensor, ww: tf.Tensor, save: Save) => {
      save([xx, ww]);
      return {
        value: run(FUSED_KERNELS.rmsNorm, { x: xx, w: ww }, { eps }),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sw] = saved as [tf.Tensor, tf.Tensor];
          return [
            run(FUSED_KERNELS.rmsNormGradInput, { x: sx, w: sw, dy }, { eps }),
            run(FUSED_KERNELS.rmsNormGradWeight, { x: sx, dy }, { eps }),
          ];
        },
      };
    }) as (x: tf.Tensor2D, w: tf.Tensor1D) => tf.Tensor2D;
    rmsNormFns.set(eps, f);
  }
  return f(x, w);
}

const swigluFn = customGrad((g: tf.Tensor, u: tf.Tensor, save: Save) => {
  save([g, u]);
  return {
    value: run(FUSED_KERNELS.swiglu, { g, u }),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sg, su] = saved as [tf.Tensor, tf.Tensor];
      return [run(FUSED_KERNELS.swigluGradGate, { dy, g: sg, u: su }), run(FUSED_KERNELS.swigluGradUp, { dy, g: sg })];
    },
  };
}) as (g: tf.Tensor, u: tf.Tensor) => tf.Tensor;

/** SwiGLU silu(g)·u (same shapes): one dispatch forward, two backward. */
export function fusedSwiglu<T extends tf.Tensor>(g: T, u: T): T {
  if (g.shape.length !== u.shape.length || g.shape.some((d, i) => d !== u.shape[i])) {
    throw new Error(`fusedSwiglu: gate ${JSON.stringify(g.shape)} and up ${JSON.stringify(u.shape)} differ`);
  }
  return swigluFn(g, u) as T;
}

/**
 * Rotary embedding of x (B·T·n·D values laid out [B, T, n, D], e.g. a [B·T, n·D] projection) returned as the
 * attention heads [B, n, T, D]: one dispatch forward, one backward. cos/sin are [T, 1, D] tables (HF duplicated
 * halves, though the kernels do not rely on it); they get no gradient.
 */
export function fusedRopeHeads(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, dims: [number, number, number, number]): tf.Tensor4D {
  const [B, T, n, D] = dims;
  if (D % 2 !== 0) throw new Error(`fusedRopeHeads: head dim ${D} is odd`);
  if (x.size !== B * T * n * D) throw new Error(`fusedRopeHeads: x ${JSON.stringify(x.shape)} is not [${B}, ${T}, ${n}, ${D}]`);
  if (cos.size !== T * D || sin.size !== T * D) throw new Error(`fusedRopeHeads: cos/sin tables must hold ${T}×${D} values`);
  const f = customGrad((xx: tf.Tensor, save: Save) => {
    // The tables are not inputs of the gradient node (they need no gradient), so keep them for the backward here.
    save([cos, sin]);
    return {
      value: run(FUSED_KERNELS.ropeToHeads, { x: tf.reshape(xx, [B, T, n, D]), cosTable: cos, sinTable: sin }),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sc, ss] = saved as [tf.Tensor, tf.Tensor];
        return [tf.reshape(run(FUSED_KERNELS.ropeFromHeadsGrad, { dy, cosTable: sc, sinTable: ss }), xx.shape)];
      },
    };
  }) as (x: tf.Tensor) => tf.Tensor4D;
  return f(x);
}

const causalSoftmaxFns = new Map<number, (scores: tf.Tensor) => tf.Tensor>();

/**
 * Causal attention probabilities softmax(scores·scale + mask) over the last axis of scores [..., rep·T, T], where
 * row r may see the keys c ≤ r mod T (llama.ts's GQA layout): one dispatch forward, one backward, and no mask
 * tensor. Masked probabilities are exactly 0, as in the composite path, where scores − 1e9 underflows in exp();
 * the two differ only for scaled scores beyond ±1e9, where the composite mask stops masking.
 */
export function fusedCausalSoftmax<R extends tf.Tensor>(scores: R, scale: number, T: number): R {
  const shape = scores.shape;
  if (shape.length < 2 || shape[shape.length - 1] !== T || shape[shape.length - 2]! % T !== 0) {
    throw new Error(`fusedCausalSoftmax: scores ${JSON.stringify(shape)} is not [..., rep·${T}, ${T}]`);
  }
  let f = causalSoftmaxFns.get(scale);
  if (!f) {
    f = customGrad((s: tf.Tensor, save: Save) => {
      const rows = tf.reshape(s, [-1, s.shape[s.shape.length - 1]!]);
      const p = run(FUSED_KERNELS.causalSoftmax, { scores: rows }, { scale });
      // The backward needs only the probabilities: keeping them instead of the scores spares a recomputation.
      save([p]);
      return {
        value: tf.reshape(p, s.shape),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sp] = saved as [tf.Tensor];
          return [tf.reshape(run(FUSED_KERNELS.causalSoftmaxGrad, { p: sp, dy: tf.reshape(dy, sp.shape) }, { scale }), s.shape)];
        },
      };
    }) as (scores: tf.Tensor) => tf.Tensor;
    causalSoftmaxFns.set(scale, f);
  }
  return f(scores) as R;
}
