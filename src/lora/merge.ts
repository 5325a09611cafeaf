// Folding LoRA adapters into the base weights: W' = W + (alpha/r)·B·A (PEFT `merge_and_unload`). The host version
// accumulates in float64 and rounds once to float32 (the reference the tests hold the stage's device merge to).
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel } from '../model/llama.js';
import type { HostTensor, WeightMap } from '../model/types.js';
import type { LoraModule } from './adapters.js';

/** B [out, r] · A [r, in] · scale, added to W [out, in]. */
export function mergedWeight(w: HostTensor, a: HostTensor, b: HostTensor, scale: number): HostTensor {
  const [out, inF] = w.shape as [number, number];
  const r = a.shape[0]!;
  if (a.shape[1] !== inF || b.shape[0] !== out || b.shape[1] !== r) {
    throw new Error(`LoRA shapes A [${a.shape}] B [${b.shape}] do not fit W [${w.shape}]`);
  }
  const data = new Float32Array(w.data.length);
  const row = new Float64Array(inF);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b.data[o * r + k]!;
      if (bk === 0) continue;
      for (let i = 0; i < inF; i++) row[i]! += bk * a.data[k * inF + i]!;
    }
    for (let i = 0; i < inF; i++) data[o * inF + i] = w.data[o * inF + i]! + scale * row[i]!;
  }
  return { shape: w.shape.slice(), data };
}

/** A copy of `weights` with every adapted projection merged; other tensors are shared, not copied. */
export function mergeAdapters(weights: WeightMap, modules: readonly LoraModule[], adapters: Map<string, HostTensor>, scale: number): WeightMap {
  const out: WeightMap = new Map(weights);
  for (const m of modules) {
    const key = `${m.name}.weight`;
    const w = weights.get(key);
    if (!w) throw new Error(`base model has no ${key}`);
    out.set(key, mergedWeight(w, adapters.get(`${m.name}.lora_A.weight`)!, adapters.get(`${m.name}.lora_B.weight`)!, scale));
  }
  return out;
}

/**
 * The merged model on the device: every adapted projection W + scale·B·A in float32 (B·A is a rank-r product, so
 * its float32 rounding is far below the 16-bit rounding of a saved checkpoint); the other tensors are the base's,
 * shared. `variables` are the adapters' (`<module>.lora_A.weight` / `.lora_B.weight`).
 */
export function mergeOnDevice(base: LlamaModel, modules: readonly LoraModule[], variables: ReadonlyMap<string, tf.Tensor>, scale: number): LlamaModel {
  const tensors = base.deviceTensors();
  const made: tf.Tensor[] = [];
  try {
    for (const m of modules) {
      const key = `${m.name}.weight`;
      const [w] = tensors.get(key) ?? [];
      const a = variables.get(`${m.name}.lora_A.weight`), b = variables.get(`${m.name}.lora_B.weight`);
      if (!w || !a || !b) throw new Error(`internal: no base weight or adapter for ${m.name}`);
      const merged = tf.tidy(() => tf.add(w, tf.mul(tf.matMul(b as tf.Tensor2D, a as tf.Tensor2D), scale)));
      made.push(merged);
      tensors.set(key, [merged]);
    }
    return LlamaModel.fromDeviceTensors(base.config, tensors, { trainable: false });
  } finally {
    for (const t of made) t.dispose();
  }
}
