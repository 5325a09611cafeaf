// Shared model-side types. Every stage exchanges models as Hugging Face directories on disk;
// in memory a model is a config plus host-side float32 weights keyed by Hugging Face parameter names.

/** Width of one decoder layer. Pruned models are heterogeneous: every layer carries its own widths. */
export interface LayerShape {
  numAttentionHeads: number;
  numKeyValueHeads: number;
  intermediateSize: number;
}

export interface RopeScaling {
  ropeType: 'default' | 'llama3' | 'linear';
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositionEmbeddings?: number;
}

export interface LlamaConfig {
  hiddenSize: number;
  vocabSize: number;
  headDim: number;
  numHiddenLayers: number;
  layers: LayerShape[];
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  bosTokenId: number;
  eosTokenId: number;
  /** Fields of the source config.json that lopper does not interpret, written back unchanged. */
  extra?: Record<string, unknown>;
}

/** A host (CPU) tensor: row-major float32 data. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Parameters by Hugging Face name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
export type WeightMap = Map<string, HostTensor>;

export interface Tokenizer {
  /** Token ids of `text` without any special token (callers prepend BOS themselves, as DESIGN.md specifies). */
  encode(text: string): number[];
  decode(ids: number[]): string;
  readonly bosId: number;
  readonly eosId: number;
  readonly vocabSize: number;
  /** Files (name → bytes) that reproduce this tokenizer in a Hugging Face model directory. */
  files(): Map<string, Uint8Array>;
}

export type ModelFormat = 'hf' | 'llama2c' | 'gguf';

export interface LoadedModel {
  config: LlamaConfig;
  weights: WeightMap;
  tokenizer: Tokenizer | null;
  format: ModelFormat;
  /** Absolute path the model was read from. */
  source: string;
}
