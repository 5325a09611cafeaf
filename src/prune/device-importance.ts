// Channel scores computed where the weights and gradients live. On a GPU, downloading every member's weight and
// gradient to sum them on the host would move the whole model twice over the bus (and hold it in host memory), so
// the salience (importance.ts's formulas, as tensor ops) is reduced on the device in float32, as LLM-Pruner does
// in PyTorch, and only the per-channel sums come back. Other backends keep importance.ts's float64 host sums.
import * as tf from '@tensorflow/tfjs-core';
import { criteria, type Criterion } from './importance.js';

type Salience = (w: tf.Tensor, g: tf.Tensor, f: tf.Tensor) => tf.Tensor;

/** importance.ts's per-weight salience of each criterion, elementwise on tensors. */
const salience: Readonly<Record<Criterion, Salience>> = {
  l1: (w) => tf.abs(w),
  l2: (w) => tf.square(w),
  vectorize: (w, g) => tf.mul(w, g),
  param_first: (w, g) => tf.abs(tf.mul(w, g)),
  param_second: (w, _g, f) => tf.abs(tf.mul(tf.square(w), f)),
  param_mix: (w, g, f) => tf.abs(tf.sub(tf.mul(w, g), tf.mul(0.5, tf.mul(tf.square(w), f)))),
};

/** Channel scores of one member on the device: rows (axis 0), columns (axis 1) or the whole tensor (null). */
export async function deviceChannelScores(criterion: Criterion, w: tf.Tensor, axis: 0 | 1 | null, g?: tf.Tensor, f?: tf.Tensor): Promise<Float64Array> {
  const def = criteria[criterion];
  if (def.needsGradient && !g) throw new Error(`criterion ${criterion} needs the gradient`);
  if (def.needsFisher && !f) throw new Error(`criterion ${criterion} needs the squared-gradient mean`);
  const sums = tf.tidy(() => {
    const s = salience[criterion](w, g ?? w, f ?? w);
    const m = s.rank === 1 ? tf.reshape(s, [-1, 1]) : s;
    const r = axis === 0 ? tf.sum(m, 1) : axis === 1 ? tf.sum(m, 0) : tf.reshape(tf.sum(m), [1]);
    return def.absOfSum ? tf.abs(r) : r;
  });
  try {
    return Float64Array.from(await sums.data() as Float32Array);
  } finally {
    sums.dispose();
  }
}
