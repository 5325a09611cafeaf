// 16-bit ↔ float32 conversion as WebGPU dispatches, so 16-bit checkpoints travel to and from the device at 2 bytes
// a value. The packed form is an int32 tensor holding two little-endian 16-bit values per word (element 2j in the
// low half of word j). The conversions are half-bits.ts's integer steps in WGSL: exact, and free of shader-f16.
import * as tf from '@tensorflow/tfjs-core';
import type { HalfKind } from '../half-bits.js';
import type { FusedProgram } from './fused-programs.js';

export const PACK16_KERNELS = { unpack: 'LopperUnpack16', pack: 'LopperPack16' } as const;

const WORKGROUP = 128;

const TO_F32_WGSL: Record<HalfKind, string> = {
  bf16: `
  fn halfToF32Bits(h : u32) -> u32 {
    return h << 16u;
  }`,
  f16: `
  fn halfToF32Bits(h : u32) -> u32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let mant = h & 0x3ffu;
    if (e == 0x1fu) {
      return sign | 0x7f800000u | (mant << 13u);
    }
    if (e != 0u) {
      return sign | ((e + 112u) << 23u) | (mant << 13u);
    }
    if (mant == 0u) {
      return sign;
    }
    let p = firstLeadingBit(mant);
    return sign | ((p + 103u) << 23u) | (((mant << (10u - p)) & 0x3ffu) << 13u);
  }`,
};

const FROM_F32_WGSL: Record<HalfKind, string> = {
  bf16: `
  fn f32BitsToHalf(bits : u32) -> u32 {
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
      return ((bits >> 16u) | 0x40u) & 0xffffu;
    }
    return ((bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u) & 0xffffu;
  }`,
  f16: `
  fn f32BitsToHalf(bits : u32) -> u32 {
    let sign = (bits >> 16u) & 0x8000u;
    let a = bits & 0x7fffffffu;
    if (a > 0x7f800000u) {
      return sign | 0x7e00u | ((a >> 13u) & 0x3ffu);
    }
    if (a >= 0x47800000u) {
      return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {
      return sign | ((a - 0x38000000u + 0xfffu + ((a >> 13u) & 1u)) >> 13u);
    }
    let e = a >> 23u;
    if (e < 102u) {
      return sign;
    }
    let m = (a & 0x7fffffu) | 0x800000u;
    let s = 126u - e;
    var q = m >> s;
    let rem = m & ((1u << s) - 1u);
    let half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u) == 1u)) {
      q = q + 1u;
    }
    return sign | q;
  }`,
};

/** float32 [n] from packed int32 [⌈n/2⌉], one thread per value. */
function unpackProgram(n: number, kind: HalfKind): FusedProgram {
  return {
    variableNames: ['packed'],
    outputShape: [n],
    shaderKey: `lopper_unpack16_${kind}`,
    dispatchLayout: { x: [0] },
    dispatch: [Math.ceil(n / WORKGROUP), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    getUserCode: () => `
  ${TO_F32_WGSL[kind]}
  fn main(index : i32) {
    if (index < uniforms.size) {
      let word = bitcast<u32>(packed[index >> 1u]);
      let h = (word >> (u32(index & 1) * 16u)) & 0xffffu;
      setOutputAtIndex(index, bitcast<f32>(halfToF32Bits(h)));
    }
  }`,
  };
}

/** packed int32 [⌈n/2⌉] from float32 [n], one thread per word; an odd n leaves the last high half zero. */
function packProgram(n: number, kind: HalfKind): FusedProgram {
  const words = Math.ceil(n / 2);
  return {
    variableNames: ['x'],
    outputShape: [words],
    shaderKey: `lopper_pack16_${kind}`,
    dispatchLayout: { x: [0] },
    dispatch: [Math.ceil(words / WORKGROUP), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    getUserCode: () => `
  ${FROM_F32_WGSL[kind]}
  fn main(index : i32) {
    if (index < uniforms.size) {
      let lo = f32BitsToHalf(bitcast<u32>(x[2 * index]));
      var hi = 0u;
      if (2 * index + 1 < uniforms.xShape) {
        hi = f32BitsToHalf(bitcast<u32>(x[2 * index + 1]));
      }
      setOutputAtIndexI32(index, bitcast<i32>(lo | (hi << 16u)));
    }
  }`,
  };
}

interface PackBackend {
  runWebGPUProgram(program: FusedProgram, inputs: tf.TensorInfo[], outputDtype: 'float32' | 'int32'): tf.TensorInfo;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap };

function unpackKernel(args: KernelArgs): tf.TensorInfo {
  const packed = args.inputs.packed;
  const n = Number(args.attrs?.n);
  if (!packed || packed.dtype !== 'int32' || packed.shape.length !== 1) throw new Error(`${PACK16_KERNELS.unpack}: packed must be an int32 vector`);
  return (args.backend as PackBackend).runWebGPUProgram(unpackProgram(n, args.attrs?.kind as HalfKind), [packed], 'float32');
}

function packKernel(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x;
  if (!x || x.dtype !== 'float32' || x.shape.length !== 1) throw new Error(`${PACK16_KERNELS.pack}: x must be a float32 vector`);
  return (args.backend as PackBackend).runWebGPUProgram(packProgram(x.shape[0]!, args.attrs?.kind as HalfKind), [x], 'int32');
}

/** Registers both kernels for 'webgpu' once (the registry outlives backends). */
export function registerPack16Kernels(): void {
  const kernels: Array<[string, (args: KernelArgs) => tf.TensorInfo]> = [[PACK16_KERNELS.unpack, unpackKernel], [PACK16_KERNELS.pack, packKernel]];
  for (const [kernelName, kernelFunc] of kernels) {
    if (tf.getKernel(kernelName, 'webgpu') === undefined) {
      tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
    }
  }
}
