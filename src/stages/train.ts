// train: a LLaMA trained from scratch on a text dataset — config from the recipe, a byte-level or lopper-trained
// BPE tokenizer (or another model's), seeded initialisation (N(0, 0.02)), and the same trainer as lora-finetune.
// Writes model/ (HF layout, tokenizer.json included) and train.jsonl.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LopperError } from '../errors/lopper-error.js';
import { LlamaModel, countParameters, hfTokenizerFromBytes, initWeights, requireTokenizer } from '../model/index.js';
import type { LlamaConfig, Tokenizer } from '../model/types.js';
import { BYTE_LEVEL_VOCAB_SIZE, tokenizerFiles, trainBpe } from '../train/bpe.js';
import { datasetExamples, datasetText, splitValidation } from '../train/examples.js';
import { readTrainSettings } from '../train/options.js';
import { decaysExceptNormsAndBiases, runTraining } from '../train/run-training.js';
import type { TrainTask } from '../train/trainer.js';
import { loadModelRef } from './model-ref.js';
import { outputDtype, writeResidentModel } from './model-output.js';
import type { StageContext, StageModule } from './types.js';

function int(stage: string, raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new LopperError('LP6005', `stage ${stage}: config.${key} must be a positive integer, got ${JSON.stringify(raw[key])}`);
  }
  return v;
}

/** The recipe's `config:` block → LlamaConfig (uniform layers; head_dim = hidden / heads unless given). */
export function modelConfigOf(stage: string, value: unknown, tokenizer: Tokenizer): LlamaConfig {
  const raw = (value ?? {}) as Record<string, unknown>;
  const hidden = int(stage, raw, 'hidden_size');
  const heads = int(stage, raw, 'num_attention_heads');
  const kvHeads = int(stage, raw, 'num_key_value_heads', heads);
  const layers = int(stage, raw, 'num_hidden_layers');
  const intermediate = int(stage, raw, 'intermediate_size');
  // head_dim defaults to hidden / heads (LLaMA); a pruned model keeps its head_dim with fewer heads, so a model
  // trained "at the pruned size" names it explicitly.
  if (raw.head_dim === undefined && hidden % heads !== 0) {
    throw new LopperError('LP6005', `stage ${stage}: config.hidden_size (${hidden}) must be divisible by num_attention_heads (${heads})`, { hint: 'Or set config.head_dim.' });
  }
  const headDim = raw.head_dim === undefined ? hidden / heads : int(stage, raw, 'head_dim');
  if (heads % kvHeads !== 0) throw new LopperError('LP6005', `stage ${stage}: config.num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`);
  if (headDim % 2 !== 0) throw new LopperError('LP6005', `stage ${stage}: the head dimension (${headDim}) must be even (rotary embeddings)`);
  return {
    hiddenSize: hidden, vocabSize: tokenizer.vocabSize, headDim, numHiddenLayers: layers,
    layers: Array.from({ length: layers }, () => ({ numAttentionHeads: heads, numKeyValueHeads: kvHeads, intermediateSize: intermediate })),
    rmsNormEps: typeof raw.rms_norm_eps === 'number' ? raw.rms_norm_eps : 1e-5,
    ropeTheta: typeof raw.rope_theta === 'number' ? raw.rope_theta : 10000,
    maxPositionEmbeddings: typeof raw.max_position_embeddings === 'number' ? raw.max_position_embeddings : 2048,
    tieWordEmbeddings: raw.tie_word_embeddings !== false,
    attentionBias: false, mlpBias: false, bosTokenId: tokenizer.bosId, eosTokenId: tokenizer.eosId,
  };
}

async function tokenizerFor(ctx: StageContext): Promise<Tokenizer> {
  const spec = (ctx.params.tokenizer ?? {}) as Record<string, unknown>;
  if (typeof spec.from === 'string') return requireTokenizer(await loadModelRef(ctx, spec.from));
  const kind = spec.kind ?? 'bpe';
  if (kind !== 'bpe' && kind !== 'byte') throw new LopperError('LP6006', `stage ${ctx.id}: tokenizer.kind must be bpe or byte, got ${JSON.stringify(kind)}`);
  const vocabSize = kind === 'byte' ? BYTE_LEVEL_VOCAB_SIZE : spec.vocab_size ?? 512;
  if (typeof vocabSize !== 'number' || !Number.isInteger(vocabSize) || vocabSize < BYTE_LEVEL_VOCAB_SIZE) {
    throw new LopperError('LP6006', `stage ${ctx.id}: tokenizer.vocab_size must be an integer ≥ ${BYTE_LEVEL_VOCAB_SIZE} (3 special tokens + 256 bytes), got ${JSON.stringify(spec.vocab_size)}`);
  }
  const text = await datasetText(ctx.dataset(String(ctx.params.dataset)));
  const files = tokenizerFiles(trainBpe(text, vocabSize));
  const tokenizer = hfTokenizerFromBytes(files.get('tokenizer.json')!, files.get('tokenizer_config.json'));
  ctx.log(`trained a ${kind} tokenizer: ${tokenizer.vocabSize} tokens`);
  return tokenizer;
}

async function run(ctx: StageContext) {
  const p = ctx.params;
  const settings = readTrainSettings(ctx.id, p.train);
  const tokenizer = await tokenizerFor(ctx);
  const config = modelConfigOf(ctx.id, p.config, tokenizer);
  if (settings.cutoffLen > config.maxPositionEmbeddings) {
    throw new LopperError('LP6001', `stage ${ctx.id}: train.cutoff_len (${settings.cutoffLen}) exceeds config.max_position_embeddings (${config.maxPositionEmbeddings})`);
  }
  const exampleOptions = { cutoffLen: settings.cutoffLen, trainOnInputs: settings.trainOnInputs };
  const all = await datasetExamples(ctx.dataset(String(p.dataset)), tokenizer, exampleOptions);
  const { train: trainSet, val } = p.val_dataset
    ? { train: all, val: await datasetExamples(ctx.dataset(String(p.val_dataset)), tokenizer, exampleOptions) }
    : splitValidation(all, Math.min(settings.valSize, Math.max(0, all.length - 1)), ctx.seed);
  if (trainSet.length === 0) {
    throw new LopperError('LP6003', `stage ${ctx.id}: dataset ${String(p.dataset)} yields no training examples at cutoff_len ${settings.cutoffLen}`);
  }
  ctx.log(`${countParameters(config)} parameters; ${trainSet.length} training / ${val.length} validation examples`);
  const dtype = outputDtype(ctx, 'float32');
  const model = LlamaModel.fromWeights(config, initWeights(config, ctx.seed), { trainable: true });
  let owned = true;
  try {
    const task: TrainTask = {
      trainable: model.params,
      loss: (batch, dropoutSeed) => tf.tidy(() => {
        const ids = tf.tensor2d(batch.ids, [batch.rows, batch.seqLen], 'int32');
        const mask = tf.tensor2d(batch.targets, [batch.rows, batch.seqLen], 'float32');
        return model.loss(ids, { mask, training: dropoutSeed !== null });
      }),
    };
    const result = await runTraining(ctx, settings, task, trainSet, val, 0, decaysExceptNormsAndBiases);
    for (const v of model.params.values()) v.trainable = false;
    owned = false; // writeResidentModel owns the model from here on, also when it fails
    const pending = writeResidentModel(ctx, { config, tokenizer, format: 'hf', source: ctx.outDir, dtype, model }, path.join(ctx.outDir, 'model'));
    return {
      pending,
      summary: {
        params: countParameters(config), steps: result.totalSteps, final_loss: result.finalLoss,
        best_val_loss: result.bestValLoss, best_step: result.bestStep,
        ...(result.resumedFrom !== null ? { resumed_from: result.resumedFrom } : {}),
      },
    };
  } finally {
    if (owned) model.dispose();
  }
}

// 2: model/ through the shared model writer (float32 unless `dtype:` says otherwise), resident for later stages.
const stage: StageModule = { kind: 'train', version: '2', outputKind: 'model', run };
export default stage;
