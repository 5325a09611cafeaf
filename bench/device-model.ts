// Random-weight models built directly on the active backend, for benchmarks of large shapes.
//
// tfjs's randomUniform/randomNormal fill on the CPU and upload (6.7 B values took 274 s on the GPU machine), and a host
// WeightMap of LLaMA-7B is 27 GB. Here every weight is produced on the device from two small index vectors with the
// classic shader hash u = fract(sin(i·12.9898 + j·78.233 + seed)·43758.5453) — five elementwise ops, no upload — and
// scaled to a uniform distribution with the requested standard deviation. Good enough for timing; not for training.
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, backendMaxTensorBytes } from '../src/model/llama.js';
import { parameterShapes } from '../src/model/config.js';
import type { LlamaConfig } from '../src/model/types.js';

let counter = 0;

/** [rows, cols] (or [n]) values, uniform with mean 0 and standard deviation `std`, computed on the device. */
export function deviceUniform(shape: number[], seed: number, std: number): tf.Tensor {
  return tf.tidy(() => {
    const rows = shape.length === 2 ? shape[0]! : 1;
    const cols = shape[shape.length - 1]!;
    const i = tf.mul(tf.range(0, rows, 1, 'float32'), 12.9898);
    const j = tf.add(tf.mul(tf.range(0, cols, 1, 'float32'), 78.233), (seed % 1000) * 0.618034);
    const x = tf.add(tf.reshape(i, [rows, 1]), tf.reshape(j, [1, cols]));
    const t = tf.mul(tf.sin(x), 43758.5453);
    const u = tf.sub(t, tf.floor(t));
    // U(0, 1) has standard deviation 1/√12.
    const w = tf.mul(tf.sub(u, 0.5), std * Math.sqrt(12));
    return tf.reshape(w, shape);
  });
}

/**
 * A LlamaModel whose parameters are created on the device: linears and embeddings U(±√3·std), norms 1, biases 0.
 * LlamaModel's constructor is private (its public factory takes host weights); the model file keeps parameters as
 * tf.Variables keyed by HF name, which is all it needs, so we build that map and call the constructor directly.
 */
export function deviceRandomModel(config: LlamaConfig, seed: number, std = 0.02): LlamaModel {
  const id = ++counter;
  const params = new Map<string, tf.Variable>();
  let k = 0;
  for (const [name, shape] of parameterShapes(config)) {
    k++;
    const value = tf.tidy(() => {
      if (name.endsWith('norm.weight')) return tf.ones(shape);
      if (name.endsWith('.bias')) return tf.zeros(shape);
      return deviceUniform(shape, seed * 7919 + k, std);
    });
    params.set(name, tf.variable(value, true, `devmodel${id}/${name}`));
    value.dispose();
  }
  // No parameter of the shapes benchmarked here exceeds the binding limit, so none is split.
  const Ctor = LlamaModel as unknown as new (config: LlamaConfig, params: Map<string, tf.Variable>,
    splits: Map<string, unknown>, maxTensorBytes: number | null) => LlamaModel;
  return new Ctor(config, params, new Map(), backendMaxTensorBytes());
}

/** LLaMA-7B (Touvron et al. 2023; HF meta-llama/Llama-2-7b-hf config): 6.74 B parameters. */
export function llama7bConfig(): LlamaConfig {
  const layers = Array.from({ length: 32 }, () => ({ numAttentionHeads: 32, numKeyValueHeads: 32, intermediateSize: 11008 }));
  return {
    hiddenSize: 4096,
    vocabSize: 32000,
    headDim: 128,
    numHiddenLayers: 32,
    layers,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    maxPositionEmbeddings: 4096,
    tieWordEmbeddings: false,
    attentionBias: false,
    mlpBias: false,
    bosTokenId: 1,
    eosTokenId: 2,
  };
}
