// LP3xxx: model files and tokenizers. Merged into src/errors/catalog.ts by the lead; codes are permanent.
import type { ErrorInfo } from '../errors/catalog.js';

export const modelErrorCodes = {
  LP3001: { code: 'LP3001', name: 'ModelNotFound', title: 'Model path does not exist' },
  LP3002: { code: 'LP3002', name: 'ModelFormatUnknown', title: 'Cannot tell which model format a path holds' },
  LP3003: { code: 'LP3003', name: 'ModelConfigInvalid', title: 'config.json is missing, unreadable or not a supported LLaMA-family config' },
  LP3004: { code: 'LP3004', name: 'SafetensorsTruncated', title: 'Safetensors file is shorter than its header says' },
  LP3005: { code: 'LP3005', name: 'SafetensorsHeaderInvalid', title: 'Safetensors header is malformed or implausibly large' },
  LP3006: { code: 'LP3006', name: 'SafetensorsOffsetsInvalid', title: 'Safetensors tensor offsets do not match its dtype and shape, overlap or leave the file' },
  LP3007: { code: 'LP3007', name: 'UnsupportedDtype', title: 'Tensor dtype is not supported' },
  LP3008: { code: 'LP3008', name: 'TensorShapeMismatch', title: 'Tensor shape does not match the model config' },
  LP3009: { code: 'LP3009', name: 'MissingTensor', title: 'A parameter the config requires is not in the model files' },
  LP3010: { code: 'LP3010', name: 'UnexpectedTensor', title: 'The model files hold a tensor the config does not describe' },
  LP3011: { code: 'LP3011', name: 'TokenizerMissing', title: 'No tokenizer found for the model' },
  LP3012: { code: 'LP3012', name: 'TokenizerInvalid', title: 'Tokenizer file is malformed or unsupported' },
  LP3013: { code: 'LP3013', name: 'ShardIndexInvalid', title: 'model.safetensors.index.json is malformed or names missing shards' },
  LP3014: { code: 'LP3014', name: 'Llama2cFileInvalid', title: 'llama2.c checkpoint is malformed' },
  LP3015: { code: 'LP3015', name: 'GgufFileInvalid', title: 'GGUF file is malformed or uses an unsupported tensor type' },
  LP3016: { code: 'LP3016', name: 'ModelWriteFailed', title: 'Cannot write the model directory' },
  LP3017: { code: 'LP3017', name: 'TokenOutOfRange', title: 'A token id is outside the vocabulary' },
  LP3018: { code: 'LP3018', name: 'GgufExportUnsupported', title: 'The model or its tokenizer cannot be written as GGUF (yet)' },
} satisfies Record<string, ErrorInfo>;

export type ModelErrorCode = keyof typeof modelErrorCodes;
