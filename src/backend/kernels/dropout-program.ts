// Counter-based dropout as one WebGPU dispatch: each thread hashes its own flat index with the op's keys
// (counter-hash.ts), so no random tensor is filled on the CPU and no mask is uploaded or kept for the backward.
// Dropout is linear in its input, so the backward is this same kernel applied to dy with the same keys.
import * as tf from '@tensorflow/tfjs-core';
import { COUNTER_HASH_WGSL } from '../counter-hash.js';
import type { FusedProgram } from './fused-programs.js';

export const DROPOUT_KERNEL = 'LopperDropout';

const WORKGROUP = 128;

/** Attributes of LopperDropout: the counter keys, the integer keep threshold and the float32 scale 1/(1 − rate). */
export interface DropoutAttrs {
  k0: number;
  k1: number;
  threshold: number;
  scale: number;
}

/** y[i] = keep(i) ? x[i]·scale : 0 over a flat x [n]; tfjs folds more than 65,535 workgroups into 2-D or 3-D. */
function dropoutProgram(n: number): FusedProgram {
  return {
    variableNames: ['x'],
    outputShape: [n],
    shaderKey: 'lopper_dropout',
    dispatchLayout: { x: [0] },
    dispatch: [Math.ceil(n / WORKGROUP), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    uniforms: 'k0 : u32, k1 : u32, threshold : u32, scale : f32,',
    size: true,
    getUserCode: () => `
  ${COUNTER_HASH_WGSL}
  fn main(index : i32) {
    if (index < uniforms.size) {
      let h = counterHash(uniforms.k0, uniforms.k1, u32(index));
      var y = 0.0;
      if ((h >> 8u) >= uniforms.threshold) {
        y = x[index] * uniforms.scale;
      }
      setOutputAtIndex(index, y);
    }
  }`,
  };
}

interface DropoutBackend {
  runWebGPUProgram(program: FusedProgram, inputs: tf.TensorInfo[], outputDtype: 'float32',
    uniforms: Array<{ type: 'uint32' | 'float32'; data: number[] }>): tf.TensorInfo;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap };

function dropoutKernel(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x;
  if (!x || x.dtype !== 'float32' || x.shape.length !== 1) throw new Error(`${DROPOUT_KERNEL}: x must be a float32 vector`);
  const a = args.attrs as unknown as DropoutAttrs;
  return (args.backend as DropoutBackend).runWebGPUProgram(dropoutProgram(x.shape[0]!), [x], 'float32', [
    { type: 'uint32', data: [a.k0] },
    { type: 'uint32', data: [a.k1] },
    { type: 'uint32', data: [a.threshold] },
    { type: 'float32', data: [a.scale] },
  ]);
}

/** Registers LopperDropout for 'webgpu' once (the registry outlives backends, so a re-created device reuses it). */
export function registerDropoutKernel(): void {
  if (tf.getKernel(DROPOUT_KERNEL, 'webgpu') !== undefined) return;
  tf.registerKernel({ kernelName: DROPOUT_KERNEL, backendName: 'webgpu', kernelFunc: dropoutKernel as unknown as tf.KernelFunc });
}
