// max |x| of a whole tensor as a 1-element tensor on the device, for the tensor-core kernel's power-of-two operand
// scaling. Two dispatches: up to 1024 workgroups each reduce a strided share of x to one partial, then one workgroup
// reduces the partials. (tfjs's Abs + Max would write a full-size |x| temporary and reduce a whole tensor inside a
// single workgroup; for a 4096×11008 weight that costs more than the matmul it protects.)
//
// Results are cached by the operand's data: tfjs data never changes under a dataId (a variable gets new data, with a
// new dataId, on every assign) and a dataId object is never reused, so identity is a safe key.
import * as tf from '@tensorflow/tfjs-core';
import type { FusedProgram } from './fused-programs.js';

const WORKGROUP = 256;
const MAX_PARTIALS = 1024;
/** Elements each invocation of the first pass reads at least (fewer workgroups for small tensors). */
const MIN_PER_INVOCATION = 16;

interface ProgramBackend {
  runWebGPUProgram(program: FusedProgram, inputs: tf.TensorInfo[], outputDtype: 'float32',
    uniforms?: Array<{ type: 'int32'; data: number[] }>): tf.TensorInfo;
  disposeData(dataId: object): boolean;
}

function treeMaxSnippet(): string {
  return `
    workgroupBarrier();
    for (var stride = ${WORKGROUP / 2}; stride > 0; stride = stride >> 1) {
      if (tid < stride) { part[tid] = max(part[tid], part[tid + stride]); }
      workgroupBarrier();
    }`;
}

function partialsProgram(groups: number): FusedProgram {
  return {
    variableNames: ['x'],
    outputShape: [groups],
    shaderKey: 'lopper_absmax_partials',
    dispatchLayout: { x: [0] },
    dispatch: [groups, 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    uniforms: 'len : i32, stride : i32,',
    getUserCode: () => `
  var<workgroup> part : array<f32, ${WORKGROUP}>;
  fn main(index : i32) {
    let tid = i32(localId.x);
    var m = 0.0;
    for (var i = index; i < uniforms.len; i = i + uniforms.stride) { m = max(m, abs(x[i])); }
    part[tid] = m;
    ${treeMaxSnippet()}
    if (tid == 0) { setOutputAtIndex(index / ${WORKGROUP}, part[0]); }
  }`,
  };
}

function finalProgram(): FusedProgram {
  return {
    variableNames: ['p'],
    outputShape: [1],
    shaderKey: 'lopper_absmax_final',
    dispatchLayout: { x: [0] },
    dispatch: [1, 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    uniforms: 'len : i32,',
    getUserCode: () => `
  var<workgroup> part : array<f32, ${WORKGROUP}>;
  fn main(index : i32) {
    let tid = i32(localId.x);
    var m = 0.0;
    for (var i = tid; i < uniforms.len; i = i + ${WORKGROUP}) { m = max(m, p[i]); }
    part[tid] = m;
    ${treeMaxSnippet()}
    if (tid == 0) { setOutputAtIndex(0, part[0]); }
  }`,
  };
}

/** max |x| over all elements, [1]; the caller disposes it (backend.disposeData). */
export function absMaxInfo(x: tf.TensorInfo, backend: ProgramBackend): tf.TensorInfo {
  const n = x.shape.reduce((a, b) => a * b, 1);
  const groups = Math.max(1, Math.min(MAX_PARTIALS, Math.ceil(n / (WORKGROUP * MIN_PER_INVOCATION))));
  const partials = backend.runWebGPUProgram(partialsProgram(groups), [x], 'float32', [
    { type: 'int32', data: [n] }, { type: 'int32', data: [groups * WORKGROUP] },
  ]);
  if (groups === 1) return partials;
  const out = backend.runWebGPUProgram(finalProgram(), [partials], 'float32', [{ type: 'int32', data: [groups] }]);
  backend.disposeData(partials.dataId);
  return out;
}

/** Values by operand data, for as long as tfjs holds that data. */
const cache = new Map<object, tf.TensorInfo>();
/** Entries added since the last sweep of entries whose data tfjs has released. */
let addedSinceSweep = 0;
const SWEEP_EVERY = 64;

/**
 * max |x| for a matmul operand. A weight (or an incoming gradient, which is an operand of both dA = dy·Bᵀ and
 * dB = Aᵀ·dy) is usually reduced once and reused: values are cached by the operand's data and released once tfjs
 * has released that data (checked every SWEEP_EVERY insertions, so the cache stays bounded by live tensors).
 * The returned value belongs to the cache; the caller must not dispose it.
 */
export function operandAbsMax(x: tf.TensorInfo, backend: ProgramBackend & LiveData): tf.TensorInfo {
  let info = cache.get(x.dataId);
  if (info) return info;
  if (++addedSinceSweep >= SWEEP_EVERY) {
    addedSinceSweep = 0;
    for (const [dataId, stale] of cache) {
      if (!backend.tensorMap.has(dataId)) {
        backend.disposeData(stale.dataId);
        cache.delete(dataId);
      }
    }
  }
  info = absMaxInfo(x, backend);
  cache.set(x.dataId, info);
  return info;
}

/** Forgets every cached value: a new device (the old one's buffers went with it). */
export function clearAbsMaxCache(): void {
  cache.clear();
  addedSinceSweep = 0;
}

/** tfjs's record of the data it holds (a tensor's entry goes when its data is released). */
interface LiveData {
  tensorMap: { has(dataId: object): boolean };
}
