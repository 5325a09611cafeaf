// The fused WebGPU kernels (RMSNorm, SwiGLU, RoPE + head transpose, causal softmax) against llama.ts's composite tfjs ops, on the
// same device: forward values and gradients op by op (ragged shapes, rows past the 65,535-workgroup dispatch limit),
// a whole LlamaModel's loss and gradients, tensor leaks, dispatch counts, and activation by precision. The device
// here may be lavapipe (float32): the tests switch the fused kernels on themselves. Skips where Dawn finds no adapter.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  assertNoDeviceError, clearDeviceErrors, disposeWebGpu, initWebGpu,
} from '../../src/backend/webgpu.js';
import {
  fusedCausalSoftmax, fusedOpsActive, fusedRmsNorm, fusedRopeHeads, fusedSwiglu, setFusedOpsEnabled,
} from '../../src/backend/kernels/fused-ops.js';
import { LlamaModel, initWeights, rmsNorm, swiglu } from '../../src/model/llama.js';
import type { LlamaConfig } from '../../src/model/types.js';
import { fillNormal, mulberry32 } from '../../src/seeded-random.js';
import { webGpuSession } from './webgpu-session.js';

/** max |fused − composite| / max |composite| accepted for single ops (float32 reduction-order differences). */
const OP_REL_BOUND = 1e-5;
/** The same for a whole model's loss, logits and parameter gradients (measured: ≤ 8e-7 on lavapipe). */
const MODEL_REL_BOUND = 1e-5;

const session = webGpuSession('float32', { teardown: () => setFusedOpsEnabled(false) });

function randomTensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
  fillNormal(data, mulberry32(seed), scale);
  return tf.tensor(data, shape, 'float32');
}

function relativeError(actual: Float32Array, expected: Float32Array): number {
  assert.equal(actual.length, expected.length);
  let diff = 0, ref = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(actual[i]!)) return Infinity;
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    ref = Math.max(ref, Math.abs(expected[i]!));
  }
  return ref === 0 ? diff : diff / ref;
}

/** Runs `f` with the fused kernels on or off and returns host copies of the tensors it returns (disposed). */
async function evaluate(fused: boolean, f: () => tf.Tensor[]): Promise<Float32Array[]> {
  setFusedOpsEnabled(fused);
  try {
    const outs = f();
    const data = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
    tf.dispose(outs);
    return data;
  } finally {
    setFusedOpsEnabled(false);
  }
}

/** Value and gradients of Σ op(inputs)·probe w.r.t. every input: probe weights make each output element count. */
function valueAndGrads(op: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], probe: tf.Tensor): tf.Tensor[] {
  const value = op(...inputs);
  const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(op(...xs), probe)))(inputs);
  return [value, ...grads];
}

async function compareFusedToComposite(label: string, t: { diagnostic(m: string): void }, op: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[], probe: tf.Tensor, names: string[]): Promise<void> {
  const composite = await evaluate(false, () => valueAndGrads(op, inputs, probe));
  const fused = await evaluate(true, () => valueAndGrads(op, inputs, probe));
  const errors = names.map((name, i) => [name, relativeError(fused[i]!, composite[i]!)] as const);
  t.diagnostic(`${label}: ${errors.map(([n, e]) => `${n} ${e.toExponential(2)}`).join(', ')}`);
  for (const [name, e] of errors) assert.ok(e <= OP_REL_BOUND, `${label} ${name}: relative error ${e} > ${OP_REL_BOUND}`);
}

/** The composite path llama.ts takes without the fused kernels: reshape, x·cos + (x·R)·sin, transpose to heads. */
function compositeRopeHeads(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, [B, T, n, D]: number[]): tf.Tensor {
  const h = D / 2;
  const r = new Float32Array(D * D);
  for (let j = 0; j < h; j++) { r[(j + h) * D + j] = -1; r[j * D + j + h] = 1; }
  return tf.tidy(() => {
    const x4 = tf.reshape(x, [B!, T!, n!, D]);
    const rotated = tf.reshape(tf.matMul(tf.reshape(x4, [B! * T! * n!, D]) as tf.Tensor2D, tf.tensor2d(r, [D, D])), [B!, T!, n!, D]);
    return tf.transpose(tf.add(tf.mul(x4, cos), tf.mul(rotated, sin)), [0, 2, 1, 3]);
  });
}

describe('fused RMSNorm', () => {
  // hidden sizes below and above the 1024 that switches to 256-thread rows, not multiples of 4 or of the workgroup;
  // ragged row counts, more than 256 rows (several rows per dW workgroup, a short last one) and more than 65,535 rows
  // (tfjs folds the dispatch into 2-D).
  const shapes: Array<[number, number]> = [[3, 72], [33, 100], [7, 4096], [67, 4096], [1001, 72], [300, 1000], [66_000, 12]];
  for (const [rows, cols] of shapes) {
    it(`matches the composite op and its gradients for x [${rows}, ${cols}]`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      const x = randomTensor([rows, cols], rows * 7919 + cols, 1.5);
      const w = randomTensor([cols], cols + 1);
      const probe = randomTensor([rows, cols], rows + cols * 31);
      try {
        for (const eps of [1e-5, 1e-6]) {
          await compareFusedToComposite(`[${rows}, ${cols}] eps ${eps}`, t,
            (a, b) => rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, eps), [x, w], probe, ['y', 'dx', 'dw']);
        }
      } finally {
        tf.dispose([x, w, probe]);
      }
      await assertNoDeviceError('fused rmsnorm test');
    });
  }
});

describe('fused SwiGLU', () => {
  // Sizes divisible by 4 run on vec4 lanes, others on scalars.
  for (const shape of [[7, 100], [5, 99], [33, 4096], [1, 3]] as Array<[number, number]>) {
    it(`matches the composite op and its gradients for [${shape.join(', ')}]`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      // Gates spread wide enough to reach both saturated ends of the sigmoid.
      const g = randomTensor(shape, shape[0]! * 13 + shape[1]!, 4);
      const u = randomTensor(shape, shape[1]! * 17 + 3);
      const probe = randomTensor(shape, shape[0]! + 99);
      try {
        await compareFusedToComposite(`[${shape.join(', ')}]`, t,
          (a, b) => swiglu(a as tf.Tensor2D, b as tf.Tensor2D), [g, u], probe, ['y', 'dg', 'du']);
      } finally {
        tf.dispose([g, u, probe]);
      }
      await assertNoDeviceError('fused swiglu test');
    });
  }
});

describe('fused RoPE + head transpose', () => {
  for (const dims of [[2, 5, 3, 8], [1, 7, 4, 6], [2, 17, 6, 64], [3, 33, 2, 128]] as Array<[number, number, number, number]>) {
    it(`matches reshape → rotate_half → transpose and its gradient for [B, T, n, D] = [${dims.join(', ')}]`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      const [B, T, n, D] = dims;
      const x = randomTensor([B * T, n * D], B * 1000 + T * 10 + n);
      // Random tables rather than HF's duplicated halves: the kernels must not rely on cos[j] = cos[j + D/2].
      const cos = randomTensor([T, 1, D], T * 3 + D);
      const sin = randomTensor([T, 1, D], T * 5 + D);
      const probe = randomTensor([B, n, T, D], D + n);
      try {
        const op = (a: tf.Tensor): tf.Tensor => fusedOpsActive() ? fusedRopeHeads(a, cos, sin, dims) : compositeRopeHeads(a, cos, sin, dims);
        await compareFusedToComposite(`[${dims.join(', ')}]`, t, op, [x], probe, ['y', 'dx']);
      } finally {
        tf.dispose([x, cos, sin, probe]);
      }
      await assertNoDeviceError('fused rope test');
    });
  }
});

/** llama.ts's composite attention softmax: scale, additive mask [rep·T, T] of −1e9 above r mod T, softmax. */
function compositeCausalSoftmax(scores: tf.Tensor, scale: number, T: number): tf.Tensor {
  const rows = scores.shape[scores.rank - 2]!;
  const m = new Float32Array(rows * T);
  for (let r = 0; r < rows; r++) for (let c = (r % T) + 1; c < T; c++) m[r * T + c] = -1e9;
  return tf.tidy(() => tf.softmax(tf.add(tf.mul(scores, scale), tf.tensor2d(m, [rows, T])), -1));
}

describe('fused causal softmax', () => {
  // Under OP_REL_BOUND; measured on lavapipe: 0 (bit-identical, the same reduction order as tfjs's Softmax) for
  // T < 1024, ≤ 3e-8 at T = 1030 (256-thread rows, where tfjs keeps 64).
  // [B, kv, rep, T]: T below, at and above the 64-thread row, not multiples of 4 or of the workgroup, one past the
  // 1024 that switches to 256-thread rows; rep 1 and 4; and more than 65,535 rows (a 2-D dispatch).
  const cases: Array<[number, number, number, number]> = [
    [1, 1, 1, 7], [2, 3, 4, 7], [1, 2, 1, 64], [2, 1, 4, 64], [1, 2, 1, 130], [2, 2, 4, 130], [1, 1, 1, 300],
    [2, 2, 4, 300], [1, 1, 1, 1030], [4, 2400, 1, 7],
  ];
  for (const [B, kv, rep, T] of cases) {
    it(`matches scale → mask → softmax and its gradient for [B, kv, rep·T, T] = [${B}, ${kv}, ${rep}·${T}, ${T}]`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      const shape = [B, kv, rep * T, T];
      const scale = 1 / Math.sqrt(18);
      // Raw q·k scores of a few units, so rows range from flat to nearly one-hot after scaling.
      const scores = randomTensor(shape, B * 7 + kv * 31 + rep * 101 + T, 6);
      const probe = randomTensor(shape, T * 13 + rep);
      try {
        const op = (s: tf.Tensor): tf.Tensor => fusedOpsActive() ? fusedCausalSoftmax(s, scale, T) : compositeCausalSoftmax(s, scale, T);
        await compareFusedToComposite(`[${shape.join(', ')}]`, t, op, [scores], probe, ['p', 'ds']);
        // Masked entries are exactly 0 in both, probabilities and gradients alike.
        const [p, ds] = await evaluate(true, () => valueAndGrads(op, [scores], probe));
        for (let r = 0; r < B * kv * rep * T; r++) {
          for (let c = (r % T) + 1; c < T; c++) {
            if (p![r * T + c] !== 0 || ds![r * T + c] !== 0) assert.fail(`row ${r} column ${c} is masked but not 0`);
          }
        }
      } finally {
        tf.dispose([scores, probe]);
      }
      await assertNoDeviceError('fused causal softmax test');
    });
  }

  it('takes one dispatch forward and one backward', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const backend = tf.backend() as unknown as { runWebGPUProgram: (...args: unknown[]) => unknown };
    const original = backend.runWebGPUProgram;
    let dispatches = 0;
    backend.runWebGPUProgram = function (this: unknown, ...args: unknown[]) {
      dispatches++;
      return original.apply(this, args);
    };
    const scores = randomTensor([2, 3, 4 * 9, 9], 1);
    const dy = randomTensor([2, 3, 4 * 9, 9], 2);
    setFusedOpsEnabled(true);
    try {
      const f = (s: tf.Tensor) => fusedCausalSoftmax(s, 0.25, 9);
      tf.dispose(tf.grads(f)([scores], dy)); // compiles the pipelines
      dispatches = 0;
      const p = f(scores);
      const forward = dispatches;
      dispatches = 0;
      const [ds] = tf.grads(f)([scores], dy);
      const forwardAndBackward = dispatches;
      tf.dispose([p, ds!]);
      assert.deepEqual({ forward, backward: forwardAndBackward - forward }, { forward: 1, backward: 1 });
    } finally {
      backend.runWebGPUProgram = original;
      setFusedOpsEnabled(false);
      tf.dispose([scores, dy]);
    }
  });

  it('rejects scores whose last two axes are not [rep·T, T]', (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const wrongT = tf.zeros([1, 2, 10, 5]);
    const raggedRows = tf.zeros([1, 1, 7, 5]);
    try {
      assert.throws(() => fusedCausalSoftmax(wrongT, 1, 4), /not \[\.\.\., rep·4, 4\]/);
      assert.throws(() => fusedCausalSoftmax(raggedRows, 1, 5), /not \[\.\.\., rep·5, 5\]/);
    } finally {
      tf.dispose([wrongT, raggedRows]);
    }
  });
});

function smallConfig(layers: LlamaConfig['layers'], extra: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    hiddenSize: 72, vocabSize: 97, headDim: 18, numHiddenLayers: layers.length, layers,
    rmsNormEps: 1e-5, ropeTheta: 10000, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
    attentionBias: false, mlpBias: false, bosTokenId: 1, eosTokenId: 2, ...extra,
  };
}

function randomIds(vocab: number, B: number, T: number, seed: number): tf.Tensor2D {
  const rand = mulberry32(seed);
  return tf.tensor2d(Int32Array.from({ length: B * T }, () => Math.floor(rand() * vocab)), [B, T], 'int32');
}

describe('LlamaModel on the fused kernels', () => {
  const configs: Array<[string, LlamaConfig]> = [
    ['GQA, 2 layers of different widths', smallConfig([
      { numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 100 },
      { numAttentionHeads: 2, numKeyValueHeads: 1, intermediateSize: 37 },
    ])],
    ['biases, tied head, MHA, ragged MLP widths', smallConfig([
      { numAttentionHeads: 4, numKeyValueHeads: 4, intermediateSize: 64 },
      { numAttentionHeads: 1, numKeyValueHeads: 1, intermediateSize: 50 },
      { numAttentionHeads: 2, numKeyValueHeads: 2, intermediateSize: 3 },
    ], { attentionBias: true, mlpBias: true, tieWordEmbeddings: true, rmsNormEps: 1e-6 })],
  ];
  for (const [label, config] of configs) {
    it(`loss, logits and every parameter gradient match the composite path (${label})`, async (t) => {
      if (!session.info) return t.skip(session.skipReason);
      // std 0.2 rather than 0.02 so that activations (and their RMSNorm scales) are far from trivial.
      const model = LlamaModel.fromWeights(config, initWeights(config, 11, 0.2));
      const ids = randomIds(config.vocabSize, 3, 13, 5);
      try {
        const run = async (fused: boolean) => {
          setFusedOpsEnabled(fused);
          try {
            const logits = model.logits(ids);
            const logitData = (await logits.data()) as Float32Array;
            logits.dispose();
            return { logits: logitData, ...(await model.gradients(ids)) };
          } finally {
            setFusedOpsEnabled(false);
          }
        };
        const composite = await run(false);
        const fused = await run(true);
        const lossRel = Math.abs(fused.loss - composite.loss) / Math.abs(composite.loss);
        const logitsRel = relativeError(fused.logits, composite.logits);
        let worst = 0, worstName = '';
        for (const [name, g] of composite.grads) {
          const e = relativeError(fused.grads.get(name)!.data, g.data);
          if (e > worst) { worst = e; worstName = name; }
        }
        t.diagnostic(`loss ${composite.loss.toFixed(5)} rel ${lossRel.toExponential(2)}, logits ${logitsRel.toExponential(2)}, worst gradient ${worstName} ${worst.toExponential(2)}`);
        assert.ok(lossRel <= MODEL_REL_BOUND, `loss relative error ${lossRel}`);
        assert.ok(logitsRel <= MODEL_REL_BOUND, `logits relative error ${logitsRel}`);
        assert.ok(worst <= MODEL_REL_BOUND, `${worstName}: gradient relative error ${worst}`);
      } finally {
        ids.dispose();
        model.dispose();
      }
      await assertNoDeviceError('fused model test');
    });
  }

  it('leaks no tensors across repeated forward and backward passes', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const config = configs[0]![1];
    const model = LlamaModel.fromWeights(config, initWeights(config, 3));
    const ids = randomIds(config.vocabSize, 2, 9, 8);
    const x = randomTensor([10, 72], 1);
    const w = randomTensor([72], 2);
    setFusedOpsEnabled(true);
    try {
      const step = async () => {
        await model.gradients(ids);
        const outs = tf.tidy(() => {
          const y = fusedRmsNorm(x as tf.Tensor2D, w as tf.Tensor1D, 1e-5);
          const s = tf.reshape(y, [2, 2, 5 * 6, 6]);
          return [y, fusedSwiglu(y, y), fusedRopeHeads(y, tf.ones([2, 1, 18]), tf.zeros([2, 1, 18]), [5, 2, 4, 18]),
            ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(fusedSwiglu(fusedRmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, 1e-5), a)))([x, w]),
            fusedCausalSoftmax(s, 0.5, 6),
            ...tf.grads((a: tf.Tensor) => tf.sum(tf.mul(fusedCausalSoftmax(a, 0.5, 6), a)))([s])];
        });
        await Promise.all(outs.map((o) => o.data()));
        tf.dispose(outs);
      };
      await step();
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) await step();
      assert.equal(tf.memory().numTensors, before);
    } finally {
      setFusedOpsEnabled(false);
      tf.dispose([ids, x, w]);
      model.dispose();
    }
  });

  it('needs fewer dispatches per decoder layer, forward and backward', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    const backend = tf.backend() as unknown as { runWebGPUProgram: (...args: unknown[]) => unknown };
    const original = backend.runWebGPUProgram;
    let dispatches = 0;
    backend.runWebGPUProgram = function (this: unknown, ...args: unknown[]) {
      dispatches++;
      return original.apply(this, args);
    };
    const layer = { numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 100 };
    // Dispatches of one forward and of one forward + backward, for models of 1 and 2 layers: the difference is one layer.
    const count = async (layers: number, fused: boolean) => {
      const config = smallConfig(Array.from({ length: layers }, () => layer));
      const model = LlamaModel.fromWeights(config, initWeights(config, 1));
      const ids = randomIds(config.vocabSize, 2, 16, 4);
      setFusedOpsEnabled(fused);
      try {
        await model.gradients(ids); // compiles pipelines, uploads constants
        dispatches = 0;
        const loss = model.loss(ids);
        const forward = dispatches;
        await loss.data();
        loss.dispose();
        dispatches = 0;
        await model.gradients(ids);
        return { forward, backward: dispatches - forward };
      } finally {
        setFusedOpsEnabled(false);
        ids.dispose();
        model.dispose();
      }
    };
    try {
      const perLayer = async (fused: boolean) => {
        const one = await count(1, fused), two = await count(2, fused);
        return { forward: two.forward - one.forward, backward: two.backward - one.backward };
      };
      const composite = await perLayer(false);
      const fused = await perLayer(true);
      t.diagnostic(`dispatches per layer: composite forward ${composite.forward}, backward ${composite.backward}; fused forward ${fused.forward}, backward ${fused.backward}`);
      assert.ok(fused.forward < composite.forward);
      assert.ok(fused.backward < composite.backward);
    } finally {
      backend.runWebGPUProgram = original;
    }
  });
});

describe('activation', () => {
  it('is off under precision float32 and on under precision mixed, on webgpu only', async (t) => {
    if (!session.info) return t.skip(session.skipReason);
    assert.equal(fusedOpsActive(), false, 'float32 keeps the composite ops');
    await disposeWebGpu();
    clearDeviceErrors();
    try {
      await initWebGpu({ precision: 'mixed' });
      assert.equal(fusedOpsActive(), true);
      await tf.setBackend('cpu');
      assert.equal(fusedOpsActive(), false, 'the cpu backend never runs the fused kernels');
    } finally {
      await disposeWebGpu();
      session.info = await initWebGpu({ precision: 'float32' });
    }
    assert.equal(fusedOpsActive(), false, 'a float32 device after a mixed one is back on the composite ops');
  });
});
