// Reading device tensors back to the host into staging buffers of our own, queued all at once and read straight
// from the mapped memory. tfjs's `data()` pools its staging buffers (each distinct size stays allocated, mapped
// host memory) and copies the mapped range into a fresh ArrayBuffer, and its copy lands behind whatever other
// work a concurrent stage queued meanwhile: a bf16 save of a pruned 7B beside an evaluate stage took 32 s, and
// downloading ahead through `data()` held 13 GB of host memory. Dawn resolves a map when the buffer's last use
// completes, so a copy queued now is readable as soon as the GPU reaches it, whatever is queued behind it.
import * as tf from '@tensorflow/tfjs-core';

/** One tensor (or several, end to end) copied into a staging buffer; `bytes` is valid until `release`. */
export interface StagedRead {
  readonly byteLength: number;
  /** The bytes, once the GPU has made the copy (a view of mapped memory on WebGPU: no host copy). */
  bytes(): Promise<Uint8Array>;
  /** Frees the staging memory; the view `bytes` returned is detached. Idempotent. */
  release(): void;
}

/** The parts of tfjs-backend-webgpu 4.22's WebGPUBackend a raw copy needs (internal API). */
interface BackendInternals {
  device: GPUDevice;
  tensorMap: { get(dataId: object): { resource: unknown } | undefined };
  commandEncoder: GPUCommandEncoder | null;
  uploadToGPU(dataId: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

const align4 = (n: number) => Math.ceil(n / 4) * 4;

let live = 0;
/** Staging buffers allocated and not yet released (a leak shows here). */
export function liveStagedReads(): number {
  return live;
}

/**
 * Stages reads of `parts` (each read as its first `bytes` bytes, e.g. a packed 16-bit tensor's meaningful half)
 * with one submit; each entry of `groups` lists part indices whose bytes are laid end to end in one staging buffer.
 * The caller may dispose the tensors as soon as this returns. On backends other than WebGPU the data is read
 * through tfjs (already host memory there).
 */
export function stageReads(parts: { tensor: tf.Tensor; bytes: number }[], groups: number[][]): StagedRead[] {
  if (tf.getBackend() !== 'webgpu') return groups.map((g) => hostRead(g.map((i) => parts[i]!)));
  const backend = tf.backend() as unknown as BackendInternals;
  const buffers = parts.map(({ tensor }) => {
    backend.uploadToGPU(tensor.dataId);
    const resource = backend.tensorMap.get(tensor.dataId)?.resource;
    if (!(resource instanceof GPUBuffer)) throw new Error('stageReads: a tensor has no GPU buffer');
    return resource;
  });
  backend.ensureCommandEncoderReady();
  backend.endComputePassEncoder();
  const staged = groups.map((group) => {
    const byteLength = group.reduce((a, i) => a + parts[i]!.bytes, 0);
    const staging = backend.device.createBuffer({ size: Math.max(4, align4(byteLength)), usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
    let at = 0;
    for (const i of group) {
      const { bytes } = parts[i]!;
      if (at % 4 !== 0) throw new Error(`stageReads: a part starts at byte ${at}, not a multiple of 4`);
      backend.commandEncoder!.copyBufferToBuffer(buffers[i]!, 0, staging, at, align4(bytes));
      at += bytes;
    }
    return { staging, byteLength };
  });
  backend.submitQueue();
  return staged.map(({ staging, byteLength }) => mappedRead(staging, byteLength));
}

function mappedRead(staging: GPUBuffer, byteLength: number): StagedRead {
  let released = false;
  live++;
  const mapped = staging.mapAsync(GPUMapMode.READ);
  mapped.catch(() => undefined); // reported by bytes(); a read released unawaited must not reject unhandled
  return {
    byteLength,
    async bytes() {
      await mapped;
      if (released) throw new Error('stageReads: read after release');
      return new Uint8Array(staging.getMappedRange(), 0, byteLength);
    },
    release() {
      if (released) return;
      released = true;
      live--;
      // Unmapping a pending map rejects its promise (caught above); destroy frees the memory either way.
      staging.destroy();
    },
  };
}

function hostRead(parts: { tensor: tf.Tensor; bytes: number }[]): StagedRead {
  const byteLength = parts.reduce((a, p) => a + p.bytes, 0);
  // Started now, so the caller may dispose the tensors once this returns.
  const datas = parts.map((p) => p.tensor.data());
  return {
    byteLength,
    async bytes() {
      const arrays = await Promise.all(datas);
      const views = arrays.map((a, i) => new Uint8Array(a.buffer, a.byteOffset, parts[i]!.bytes));
      if (views.length === 1) return views[0]!;
      const out = new Uint8Array(byteLength);
      let at = 0;
      for (const v of views) { out.set(v, at); at += v.byteLength; }
      return out;
    },
    release() {},
  };
}
