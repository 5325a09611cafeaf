// LoRA adapters (Hu et al. 2021) as PEFT implements them for nn.Linear: y = W·x + (alpha/r)·B·A·dropout(x), with
// A [r, in] initialised kaiming_uniform(a=√5) — i.e. U(−1/√in, 1/√in) — and B [out, r] zeros, so training starts
// from the base model exactly. Adapters hook into LlamaModel's `linear` option; the base weights are never touched.
import * as tf from '@tensorflow/tfjs-core';
import type { LinearHook } from '../model/llama.js';
import type { HostTensor, LlamaConfig } from '../model/types.js';
import { dropout } from '../backend/dropout.js';
import { deriveSeed, uniformSamples } from '../seeded-random.js';

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface LoraOptions {
  r: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
}

/** One adapted projection: its module name (`model.layers.3.self_attn.q_proj`) and [out, in] shape. */
export interface LoraModule {
  name: string;
  inFeatures: number;
  outFeatures: number;
}

/** The projections of `config` that `targets` selects (zero-width projections of fully pruned blocks are skipped). */
export function loraModules(config: LlamaConfig, targets: readonly LoraTarget[]): LoraModule[] {
  const out: LoraModule[] = [];
  const H = config.hiddenSize;
  const D = config.headDim;
  config.layers.forEach((layer, i) => {
    const q = layer.numAttentionHeads * D;
    const kv = layer.numKeyValueHeads * D;
    const I = layer.intermediateSize;
    const shapes: Record<LoraTarget, [string, number, number]> = {
      q_proj: ['self_attn', q, H], k_proj: ['self_attn', kv, H], v_proj: ['self_attn', kv, H], o_proj: ['self_attn', H, q],
      gate_proj: ['mlp', I, H], up_proj: ['mlp', I, H], down_proj: ['mlp', H, I],
    };
    for (const target of LORA_TARGETS) {
      if (!targets.includes(target)) continue;
      const [block, outFeatures, inFeatures] = shapes[target];
      if (outFeatures === 0 || inFeatures === 0) continue;
      out.push({ name: `model.layers.${i}.${block}.${target}`, inFeatures, outFeatures });
    }
  });
  return out;
}

export class LoraAdapters {
  readonly options: LoraOptions;
  readonly modules: LoraModule[];
  /** `<module>.lora_A.weight` [r, in] and `<module>.lora_B.weight` [out, r], as tf.Variables. */
  readonly variables: Map<string, tf.Variable>;
  private readonly byModule: Map<string, { a: tf.Variable; b: tf.Variable; index: number }>;

  private constructor(options: LoraOptions, modules: LoraModule[], variables: Map<string, tf.Variable>) {
    this.options = options;
    this.modules = modules;
    this.variables = variables;
    this.byModule = new Map(modules.map((m, index) => [m.name, {
      a: variables.get(`${m.name}.lora_A.weight`)!, b: variables.get(`${m.name}.lora_B.weight`)!, index,
    }]));
  }

  get scale(): number {
    return this.options.alpha / this.options.r;
  }

  /** Fresh adapters (PEFT init), seeded per module so the draw does not depend on which other modules exist. */
  static init(config: LlamaConfig, options: LoraOptions, seed: number): LoraAdapters {
    const host = new Map<string, HostTensor>();
    for (const m of loraModules(config, options.targets)) {
      const bound = 1 / Math.sqrt(m.inFeatures);
      const seedA = deriveSeed(seed, ...Array.from(m.name, (c) => c.charCodeAt(0)));
      host.set(`${m.name}.lora_A.weight`, { shape: [options.r, m.inFeatures], data: uniformSamples(options.r * m.inFeatures, -bound, bound, seedA) });
      host.set(`${m.name}.lora_B.weight`, { shape: [m.outFeatures, options.r], data: new Float32Array(m.outFeatures * options.r) });
    }
    return LoraAdapters.fromWeights(config, options, host);
  }

  /** Adapters from host tensors keyed `<module>.lora_A.weight` / `.lora_B.weight` (e.g. a checkpoint). */
  static fromWeights(config: LlamaConfig, options: LoraOptions, weights: Map<string, HostTensor>): LoraAdapters {
    const modules = loraModules(config, options.targets);
    const variables = new Map<string, tf.Variable>();
    for (const m of modules) {
      for (const [suffix, shape] of [['lora_A', [options.r, m.inFeatures]], ['lora_B', [m.outFeatures, options.r]]] as const) {
        const name = `${m.name}.${suffix}.weight`;
        const t = weights.get(name);
        if (!t || t.shape.join() !== shape.join()) throw new Error(`LoRA weight ${name}: expected shape [${shape.join(', ')}], got ${t ? `[${t.shape.join(', ')}]` : 'nothing'}`);
        const id = ++adapterCounter;
        variables.set(name, tf.tidy(() => tf.variable(tf.tensor(t.data, t.shape, 'float32'), true, `lora${id}/${name}`)));
      }
    }
    return new LoraAdapters(options, modules, variables);
  }

  /** The `linear` hook: base(x) + scale·(dropout(x)·Aᵀ)·Bᵀ on adapted projections. Dropout only when `dropoutSeed`
   * is given (training), seeded per module from it; the mask is drawn on the device (backend/dropout.ts). */
  hook(dropoutSeed: number | null = null): LinearHook {
    return (name, x, base) => {
      const adapter = this.byModule.get(name);
      if (!adapter) return base(x);
      const input = dropoutSeed !== null && this.options.dropout > 0
        ? dropout(x, this.options.dropout, deriveSeed(dropoutSeed, adapter.index))
        : x;
      const low = tf.matMul(input as tf.Tensor2D, adapter.a as tf.Tensor2D, false, true);
      const delta = tf.matMul(low, adapter.b as tf.Tensor2D, false, true);
      return tf.add(base(x), tf.mul(delta, this.scale));
    };
  }

  async weights(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [name, v] of this.variables) out.set(name, { shape: v.shape.slice(), data: (await v.data()) as Float32Array });
    return out;
  }

  dispose(): void {
    for (const v of this.variables.values()) v.dispose();
  }
}

let adapterCounter = 0;
