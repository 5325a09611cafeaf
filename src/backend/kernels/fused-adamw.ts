// The AdamW update of one parameter as a single WebGPU dispatch. The composite step in train/adamw.ts costs about
// twelve tfjs ops per parameter, each a dispatch with its own uniform buffer, bind group and fresh output buffer;
// LoRA on LLaMA-7B has 448 adapter tensors, so the optimizer alone issued ~5,400 dispatches a step. This kernel
// reads p, m, v and g once, writes m and v back in place and writes p's new value to a fresh buffer.
//
// Why m and v may be written in place:
//  - tfjs variables are mutable handles (`assign` only swaps their dataId), and m and v are private to AdamW: no
//    other tensor reads them, no kernel caches anything derived from them. A shared buffer (backend reference count
//    above one, which reshape/clone/assign(t) would cause) is still refused: `fusedAdamWStep` then returns false and
//    the caller's composite step gives the moments buffers of their own, so later steps are fused again.
//  - The dispatch is recorded into tfjs's current compute pass, so it runs after every op already recorded that
//    reads or writes these buffers (including the backward pass that produced g) and before every later one.
//  - tfjs caches values read back to the host next to the GPU buffer and would serve that stale copy after an
//    in-place write, so that cache is dropped here. A read of m or v still in flight when the step is recorded
//    would re-fill it with pre-step values when it resolves: await state() before stepping (the trainer does).
// Why p is NOT written in place: kernels/abs-max.ts caches max|W| of a variable's current data keyed by its dataId,
// on the documented premise that a variable gets a new dataId whenever its value changes. An in-place p would keep
// the dataId and leave the tensor-core matmul scaling LoRA weights by a stale max (for B, initialised to zero, a
// scale of 2^100). So p gets a new buffer and a new dataId, as with assign; it costs no extra dispatch, and the
// buffer manager recycles p's old buffer for the next parameter of the same size.
//
// The math follows AdamW.step's composite ops one for one (same operand order, the same float32-rounded scalars),
// float32 only, no f16, so it also runs on lavapipe. Precision mixed turns Dawn's robustness off, so every access is
// guarded by the element count.
import * as tf from '@tensorflow/tfjs-core';
import { fusedOpsActive } from './fused-ops.js';

export interface FusedAdamWHyper {
  b1: number;
  b2: number;
  eps: number;
  lr: number;
  /** 0 when this parameter gets no weight decay. */
  weightDecay: number;
  /** lr / (1 − β1^t). */
  stepSize: number;
  /** √(1 − β2^t). */
  sqrtBc2: number;
}

/** The parts of tfjs-backend-webgpu 4.22's WebGPUBackend a raw in-place dispatch needs (internal API). */
interface BackendInternals {
  device: GPUDevice;
  tensorMap: {
    get(dataId: object): { resource: unknown; values: unknown; dtype: string; external?: boolean } | undefined;
  };
  commandQueueOwnedIds: WeakSet<object>;
  commandEncoder: GPUCommandEncoder | null;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  refCount(dataId: object): number;
  makeTensorInfo(shape: number[], dtype: 'float32'): tf.TensorInfo;
  uploadToGPU(dataId: object): void;
  makeUniforms(u: Array<{ type: 'int32' | 'uint32' | 'float32'; data: number[] }>): GPUBufferBinding;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

const WORKGROUP = 256;

/** True when AdamW should take the fused step: the fused float32 kernels are on and tfjs runs on WebGPU. */
export function fusedAdamWActive(): boolean {
  return fusedOpsActive();
}

function shader(vec4: boolean): string {
  const t = vec4 ? 'vec4<f32>' : 'f32';
  return /* wgsl */ `
struct Hyper {
  n: u32,
  decay: f32,
  b1: f32,
  oneMinusB1: f32,
  b2: f32,
  oneMinusB2: f32,
  eps: f32,
  stepSize: f32,
  sqrtBc2: f32,
}

@group(0) @binding(0) var<storage, read_write> pOut: array<${t}>;
@group(0) @binding(1) var<storage, read_write> m: array<${t}>;
@group(0) @binding(2) var<storage, read_write> v: array<${t}>;
@group(0) @binding(3) var<storage, read> p: array<${t}>;
@group(0) @binding(4) var<storage, read> g: array<${t}>;
@group(0) @binding(5) var<uniform> h: Hyper;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.y * groups.x * ${WORKGROUP}u + gid.x;
  if (i >= h.n) {
    return;
  }
  let gi = g[i];
  let decayed = p[i] * h.decay;
  let mNew = m[i] * h.b1 + gi * h.oneMinusB1;
  let vNew = v[i] * h.b2 + (gi * gi) * h.oneMinusB2;
  let denom = sqrt(vNew) / h.sqrtBc2 + h.eps;
  m[i] = mNew;
  v[i] = vNew;
  pOut[i] = decayed - (mNew / denom) * h.stepSize;
}
`;
}

interface Pipelines {
  scalar?: GPUComputePipeline;
  vec4?: GPUComputePipeline;
}

// Keyed by device so a re-initialised backend (tests dispose and recreate devices) never sees a stale pipeline.
const pipelines = new WeakMap<GPUDevice, Pipelines>();

function pipelineFor(device: GPUDevice, vec4: boolean): GPUComputePipeline {
  let cached = pipelines.get(device);
  if (!cached) pipelines.set(device, (cached = {}));
  const key = vec4 ? 'vec4' : 'scalar';
  let pipeline = cached[key];
  if (!pipeline) {
    const module = device.createShaderModule({ code: shader(vec4), label: `LopperAdamW_${key}` });
    pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: `LopperAdamW_${key}` });
    cached[key] = pipeline;
  }
  return pipeline;
}

/**
 * Takes one AdamW step for p with one compute dispatch recorded into tfjs's current pass: m and v in place, p
 * assigned a new buffer. Returns false, having recorded nothing, when updating m or v in place is not safe (a
 * buffer shared with another tensor, an external or non-buffer resource, aliasing with p or g); the caller then
 * takes the composite step, which gives the moments buffers of their own. Call only while fusedAdamWActive().
 */
export function fusedAdamWStep(p: tf.Variable, g: tf.Tensor, m: tf.Variable, v: tf.Variable, h: FusedAdamWHyper): boolean {
  for (const [name, t] of [['p', p], ['g', g], ['m', m], ['v', v]] as const) {
    if (t.dtype !== 'float32') throw new Error(`fusedAdamWStep: ${name} is ${t.dtype}; float32 only`);
  }
  if (g.size !== p.size || m.size !== p.size || v.size !== p.size) {
    throw new Error(`fusedAdamWStep: sizes differ (p ${p.size}, g ${g.size}, m ${m.size}, v ${v.size})`);
  }
  if (p.size === 0) return true;
  const backend = tf.backend() as unknown as BackendInternals;
  const inPlace = [m, v];
  if (inPlace.some((t) => backend.refCount(t.dataId) !== 1)) return false;
  const inputs = [m, v, p, g];
  for (const t of inputs) backend.uploadToGPU(t.dataId);
  const buffers: GPUBuffer[] = [];
  for (const t of inputs) {
    const data = backend.tensorMap.get(t.dataId);
    if (!data || data.external || !(data.resource instanceof GPUBuffer)) return false;
    buffers.push(data.resource);
  }
  // A buffer bound writable and bound again in one dispatch is a validation error, and would be a data race.
  if (buffers.slice(2).some((b) => b === buffers[0] || b === buffers[1]) || buffers[0] === buffers[1]) return false;

  const vec4 = p.size % 4 === 0;
  const n = vec4 ? p.size / 4 : p.size;
  const device = backend.device;
  const pipeline = pipelineFor(device, vec4);
  const groups = Math.ceil(n / WORKGROUP);
  const maxPerDim = device.limits.maxComputeWorkgroupsPerDimension;
  const gx = Math.min(groups, maxPerDim);
  const gy = Math.ceil(groups / gx);
  if (gy > maxPerDim) throw new Error(`fusedAdamWStep: ${p.size} elements exceed one dispatch`);

  const out = backend.makeTensorInfo(p.shape, 'float32');
  backend.uploadToGPU(out.dataId);
  const outBuffer = backend.tensorMap.get(out.dataId)!.resource as GPUBuffer;
  // The scalars are rounded to float32 from the same double-precision expressions the composite step feeds tfjs.
  const uniforms = backend.makeUniforms([
    { type: 'uint32', data: [n] },
    { type: 'float32', data: [1 - h.lr * h.weightDecay] },
    { type: 'float32', data: [h.b1] },
    { type: 'float32', data: [1 - h.b1] },
    { type: 'float32', data: [h.b2] },
    { type: 'float32', data: [1 - h.b2] },
    { type: 'float32', data: [h.eps] },
    { type: 'float32', data: [h.stepSize] },
    { type: 'float32', data: [h.sqrtBc2] },
  ]);
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      ...[outBuffer, ...buffers].map((buffer, binding) => ({ binding, resource: { buffer } })),
      { binding: 5, resource: uniforms },
    ],
  });
  backend.ensureCommandEncoderReady();
  if (!backend.computePassEncoder) backend.computePassEncoder = backend.commandEncoder!.beginComputePass({});
  backend.computePassEncoder.setPipeline(pipeline);
  backend.computePassEncoder.setBindGroup(0, bindGroup);
  backend.computePassEncoder.dispatchWorkgroups(gx, gy);
  // Keeps buffers disposed before the submit (g by the caller, p's old data by the assign below) out of the pool.
  for (const t of [...inputs, out]) backend.commandQueueOwnedIds.add(t.dataId);
  for (const t of inPlace) backend.tensorMap.get(t.dataId)!.values = null;
  backend.dispatchCountInPass++;
  if (backend.dispatchCountInPass >= tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE')) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
  const pNew = tf.engine().makeTensorFromTensorInfo(out);
  p.assign(pNew);
  pNew.dispose();
  return true;
}
