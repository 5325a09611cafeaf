// Host bytes into new device tensors through a few staging buffers reused for a whole model load. tfjs uploads
// every tensor through a fresh mapped-at-creation buffer, and allocating (and faulting in) that host-visible memory
// was half of a 7B load's main thread on the H200 (GPUDevice.createBuffer, 10 s of 14 GB streamed). Here the same
// few slots are filled, copied to the tensor's buffer and mapped again once the GPU has read them.
import * as tf from '@tensorflow/tfjs-core';

interface BackendInternals {
  device: GPUDevice;
  tensorMap: { get(dataId: object): { resource: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: 'int32' | 'float32'): tf.TensorInfo;
  uploadToGPU(dataId: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  commandEncoder: GPUCommandEncoder | null;
}

const MIB = 1024 * 1024;

interface Slot { buffer: GPUBuffer; ready: Promise<unknown> }

export class DeviceUploader {
  private readonly backend: BackendInternals;
  private readonly slots: Slot[] = [];
  private next = 0;
  private closed = false;

  /** Only on WebGPU (see `available`). */
  constructor(private readonly slotBytes = 64 * MIB, slotCount = 4) {
    this.backend = tf.backend() as unknown as BackendInternals;
    for (let i = 0; i < slotCount; i++) {
      const buffer = this.backend.device.createBuffer({ size: slotBytes, usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
      this.slots.push({ buffer, ready: Promise.resolve() });
    }
  }

  static available(): boolean {
    return tf.getBackend() === 'webgpu';
  }

  /** A tensor of `shape` and `dtype` holding `bytes` (little-endian elements; a ragged tail word is zero-padded). */
  async tensor(bytes: Uint8Array, shape: number[], dtype: 'int32' | 'float32'): Promise<tf.Tensor> {
    if (this.closed) throw new Error('DeviceUploader: closed');
    const numel = shape.reduce((a, d) => a * d, 1);
    if (Math.ceil(bytes.byteLength / 4) !== numel) throw new Error(`DeviceUploader: ${bytes.byteLength} bytes do not fill ${numel} 32-bit elements`);
    const info = this.backend.makeTensorInfo(shape, dtype);
    this.backend.uploadToGPU(info.dataId);
    const dest = this.backend.tensorMap.get(info.dataId)!.resource as GPUBuffer;
    const tensor = tf.engine().makeTensorFromTensorInfo(info);
    try {
      for (let at = 0; at < bytes.byteLength; at += this.slotBytes) {
        const piece = bytes.subarray(at, Math.min(bytes.byteLength, at + this.slotBytes));
        await this.copy(piece, dest, at);
      }
    } catch (e) {
      tensor.dispose();
      throw e;
    }
    return tensor;
  }

  /** Frees the slots once every copy queued from them has been read by the GPU. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.slots.map((s) => s.ready));
    for (const s of this.slots) s.buffer.destroy();
  }

  private async copy(piece: Uint8Array, dest: GPUBuffer, offset: number): Promise<void> {
    const slot = this.slots[this.next]!;
    this.next = (this.next + 1) % this.slots.length;
    await slot.ready;
    const size = Math.ceil(piece.byteLength / 4) * 4;
    const mapped = new Uint8Array(slot.buffer.getMappedRange(0, size));
    mapped.set(piece);
    mapped.fill(0, piece.byteLength);
    slot.buffer.unmap();
    const b = this.backend;
    // Recorded on tfjs's own encoder, so the copy is ordered before whatever reads the tensor next.
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    b.commandEncoder!.copyBufferToBuffer(slot.buffer, 0, dest, offset, size);
    b.submitQueue();
    slot.ready = slot.buffer.mapAsync(GPUMapMode.WRITE);
  }
}
