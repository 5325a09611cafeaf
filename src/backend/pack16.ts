// 16-bit floats (bf16, f16) to and from float32 tensors through a packed int32 form — two raw little-endian 16-bit
// values per word, element 2j in the low half of word j — so a 16-bit checkpoint is uploaded, and a GPU-resident
// model downloaded, at 2 bytes a value. On webgpu each direction is one dispatch (kernels/pack16-programs.ts);
// other backends convert on the host with the same integer steps (half-bits.ts), so results match bit for bit.
import * as tf from '@tensorflow/tfjs-core';
import { f32BitsToHalf, halfToF32Bits, type HalfKind } from './half-bits.js';
import { PACK16_KERNELS, registerPack16Kernels } from './kernels/pack16-programs.js';

export type { HalfKind } from './half-bits.js';

/** Packed words of raw 16-bit values (2·n bytes, little-endian); an odd n gets a zero high half in the last word. */
export function packedWordsFromBytes(bytes: Uint8Array): Int32Array {
  if (bytes.length % 2 !== 0) throw new Error(`packedWordsFromBytes: ${bytes.length} bytes are not whole 16-bit values`);
  const words = new Int32Array(Math.ceil(bytes.length / 4));
  // Int32Array is host-endian; 16-bit checkpoints are little-endian, as are the hosts Node and Dawn run on.
  new Uint8Array(words.buffer).set(bytes);
  return words;
}

/**
 * The packed int32 tensor [⌈n/2⌉] of raw 16-bit values and their count n. When `bytes` is word-aligned and whole
 * words long (a tensor read into its own buffer), the tensor views its memory instead of copying 2 bytes a value
 * once more: the caller hands `bytes` over and must not change it afterwards.
 */
export function packed16FromBytes(bytes: Uint8Array): { packed: tf.Tensor1D; n: number } {
  const words = bytes.byteOffset % 4 === 0 && bytes.length % 4 === 0
    ? new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)
    : packedWordsFromBytes(bytes);
  return { packed: tf.tensor1d(words, 'int32'), n: bytes.length / 2 };
}

function checkKind(kind: string): asserts kind is HalfKind {
  if (kind !== 'bf16' && kind !== 'f16') throw new Error(`unknown 16-bit kind ${JSON.stringify(kind)} (bf16 or f16)`);
}

/** float32 [n] (reshape as needed) from `packed`, an int32 tensor of ⌈n/2⌉ words of 16-bit `kind` values. */
export function unpack16(packed: tf.Tensor, n: number, kind: HalfKind): tf.Tensor1D {
  checkKind(kind);
  if (packed.dtype !== 'int32') throw new Error(`unpack16: packed is ${packed.dtype}, not int32`);
  if (!Number.isInteger(n) || n < 0 || packed.size !== Math.ceil(n / 2)) {
    throw new Error(`unpack16: ${packed.size} words do not hold ${n} values`);
  }
  if (tf.getBackend() === 'webgpu') {
    registerPack16Kernels();
    return tf.tidy(() => tf.engine().runKernel(PACK16_KERNELS.unpack, { packed: tf.reshape(packed, [packed.size]) }, { n, kind }) as tf.Tensor1D);
  }
  const data = packed.dataSync() as Int32Array;
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = halfToF32Bits((words[i >>> 1]! >>> ((i & 1) * 16)) & 0xffff, kind);
  return tf.tensor1d(new Float32Array(bits.buffer), 'float32');
}

/** Packed int32 [⌈n/2⌉] of float32 x (any shape, n values) rounded to 16-bit `kind`, nearest even. */
export function pack16(x: tf.Tensor, kind: HalfKind): tf.Tensor1D {
  checkKind(kind);
  if (x.dtype !== 'float32') throw new Error(`pack16: x is ${x.dtype}, not float32`);
  if (tf.getBackend() === 'webgpu') {
    registerPack16Kernels();
    return tf.tidy(() => tf.engine().runKernel(PACK16_KERNELS.pack, { x: tf.reshape(x, [x.size]) }, { kind }) as tf.Tensor1D);
  }
  const values = x.dataSync() as Float32Array;
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const words = new Int32Array(Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i++) words[i >>> 1] |= f32BitsToHalf(bits[i]!, kind) << ((i & 1) * 16);
  return tf.tensor1d(words, 'int32');
}
