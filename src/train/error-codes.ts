// LP6xxx — training (train, lora-finetune). Merged into src/errors/catalog.ts by the lead.
export const trainErrorCodes = {
  LP6001: { name: 'InvalidTrainOptions', title: 'Training options are inconsistent' },
  LP6002: { name: 'UnsupportedTrainingFormat', title: 'This dataset format cannot be trained on' },
  LP6003: { name: 'NotEnoughTrainingData', title: 'The dataset yields too few training examples' },
  LP6004: { name: 'InvalidLoraOptions', title: 'LoRA options are invalid' },
  LP6005: { name: 'InvalidModelShape', title: 'The model config to train is invalid' },
  LP6006: { name: 'TokenizerMismatch', title: 'The tokenizer does not fit the model' },
  LP6007: { name: 'NonFiniteLoss', title: 'The training loss became NaN or infinite' },
  LP6008: { name: 'InvalidDatasetRecord', title: 'A training record is malformed' },
} as const;
