// Float32 safetensors encoding for what the trainer writes itself: checkpoints (parameters + optimizer moments)
// and PEFT adapters. Layout per https://github.com/huggingface/safetensors: u64 little-endian header length, a JSON
// header { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": {str: str} } padded with spaces to a
// multiple of 8, then the raw little-endian data. Tensor names are written in sorted order, as safetensors does.
import type { HostTensor } from '../model/types.js';

export function encodeSafetensors(tensors: Map<string, HostTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const bytes = t.data.length * 4;
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors.get(name)!;
    const src = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(src, at); // host is little-endian (x86, arm64), as safetensors requires
    at += src.length;
  }
  return out;
}

export function decodeSafetensors(bytes: Uint8Array): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  const base = 8 + headerLength;
  const tensors = new Map<string, HostTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') { metadata = entry as Record<string, string>; continue; }
    const { dtype, shape, data_offsets } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (dtype !== 'F32') throw new Error(`tensor ${name}: dtype ${dtype}, expected F32`);
    const [begin, end] = data_offsets;
    const data = new Float32Array((end - begin) / 4);
    new Uint8Array(data.buffer).set(bytes.subarray(base + begin, base + end));
    tensors.set(name, { shape, data });
  }
  return { tensors, metadata };
}
