// Every user-facing error code, permanent once released. Append new codes; never renumber.
// Ranges: LP1xxx recipe/DSL, LP2xxx planner, LP3xxx model files and tokenizers, LP4xxx pruning,
// LP5xxx evaluate, LP6xxx training, LP7xxx runner/store, LP8xxx backend/device.
// Each area keeps its codes in src/<area>/error-codes.ts (no edit races); this file merges them into one table.
import { dslErrorCodes } from '../dsl/error-codes.js';
import { planErrorCodes } from '../plan/error-codes.js';
import { modelErrorCodes } from '../model/error-codes.js';
import { pruneErrorCodes } from '../prune/error-codes.js';
import { evalErrorCodes } from '../eval/error-codes.js';
import { runErrorCodes } from '../run/error-codes.js';
import { backendErrorCodes } from '../backend/error-codes.js';

export interface ErrorInfo { code: string; name: string; title: string }

export const errorCatalog = {
  ...dslErrorCodes,
  ...planErrorCodes,
  ...modelErrorCodes,
  ...pruneErrorCodes,
  ...evalErrorCodes,
  ...runErrorCodes,
  ...backendErrorCodes,
} satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof errorCatalog;

/** The catalog entry of a code, or undefined for a code no area has registered. */
export function errorInfo(code: string): ErrorInfo | undefined {
  return (errorCatalog as Record<string, ErrorInfo>)[code];
}
