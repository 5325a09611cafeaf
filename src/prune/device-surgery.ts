// Structured removal on the device: the same surgery as surgery.ts (one definition of which rows and columns go),
// applied to a resident model's tensors by gathering the kept indices, so the pruned model is derived from its base
// without a trip through host memory or disk. Untouched tensors are shared with the base, not copied.
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel } from '../model/llama.js';
import type { PruningGroup } from './groups.js';
import { pruneWeights, type TensorSlicer } from './surgery.js';
import { addCompensationBiases, type MeanInputs } from './bias-compensation.js';

/** Row chunks of one parameter (one chunk unless the parameter is split). */
type Chunks = tf.Tensor[];

function gather(t: tf.Tensor, indices: number[], axis: 0 | 1): tf.Tensor {
  return tf.tidy(() => tf.gather(t, tf.tensor1d(indices, 'int32'), axis));
}

/** Every tensor this slicer makes, so the caller can dispose them once the model has taken its references. */
function deviceSlicer(made: tf.Tensor[]): TensorSlicer<Chunks> {
  const keep = (t: tf.Tensor) => { made.push(t); return t; };
  return {
    rows(parts, rows) {
      // Only embed_tokens / lm_head are ever split, along the vocabulary, which no group prunes.
      if (parts.length !== 1) throw new Error('internal: row selection on a split parameter');
      return [keep(gather(parts[0]!, rows, 0))];
    },
    columns(parts, columns) {
      return parts.map((t) => keep(gather(t, columns, 1)));
    },
  };
}

/**
 * The pruned model of `base` as a new frozen device model (the base is left as it is); with `means`, FLAP's bias
 * compensation of those groups (bias-compensation.ts).
 */
export function pruneDeviceModel(base: LlamaModel, groups: PruningGroup[], kept: Map<string, number[]>, means?: MeanInputs): LlamaModel {
  const made: tf.Tensor[] = [];
  try {
    const tensors = base.deviceTensors();
    let pruned = pruneWeights(base.config, tensors, groups, kept, deviceSlicer(made));
    if (means && means.size > 0) pruned = addCompensationBiases(base.config, tensors, pruned, groups, kept, means, made);
    return LlamaModel.fromDeviceTensors(pruned.config, pruned.weights, { trainable: false });
  } finally {
    for (const t of made) t.dispose();
  }
}
