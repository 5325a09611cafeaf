// LP5xxx: evaluate. Merged into src/errors/catalog.ts by the lead; codes are permanent.
import type { ErrorInfo } from '../errors/catalog.js';

export const evalErrorCodes = {
  LP5001: { code: 'LP5001', name: 'JsonlLineInvalid', title: 'A JSONL line is not valid JSON' },
  LP5002: { code: 'LP5002', name: 'MultipleChoiceRecordInvalid', title: 'A multiple-choice record lacks a question, choices or a valid label' },
  LP5003: { code: 'LP5003', name: 'UnknownTemplate', title: 'The zero-shot template is not one lopper knows' },
  LP5004: { code: 'LP5004', name: 'TemplatePlaceholderUnknown', title: 'A user template uses a placeholder other than {question} and {choice}' },
  LP5005: { code: 'LP5005', name: 'WinograndeBlankMissing', title: 'A WinoGrande sentence has no "_" blank' },
  LP5006: { code: 'LP5006', name: 'EmptyContinuation', title: 'A continuation tokenizes to no tokens after its context' },
  LP5007: { code: 'LP5007', name: 'EvaluationDatasetFormat', title: 'The dataset format does not fit this evaluation' },
  LP5008: { code: 'LP5008', name: 'DatasetTooShort', title: 'The dataset holds fewer tokens than one perplexity window' },
  LP5009: { code: 'LP5009', name: 'EvaluateModelTokenizerMissing', title: 'The evaluated model has no tokenizer' },
  LP5010: { code: 'LP5010', name: 'ContinuationTooLong', title: 'A continuation does not fit in the model context' },
  LP5011: { code: 'LP5011', name: 'EvaluateParamsInvalid', title: 'An evaluate stage parameter is out of range' },
  LP5012: { code: 'LP5012', name: 'DatasetUnreadable', title: 'An evaluation dataset cannot be read' },
  LP5013: { code: 'LP5013', name: 'MetricsFileInvalid', title: 'A metrics.json file does not have the evaluate stage shape' },
} satisfies Record<string, ErrorInfo>;

export type EvalErrorCode = keyof typeof evalErrorCodes;
