// Every user-facing error code, permanent once released. Append new codes; never renumber.
// Ranges: LP1xxx recipe/DSL, LP2xxx planner, LP3xxx model files and tokenizers, LP4xxx pruning,
// LP5xxx evaluate, LP6xxx training, LP7xxx runner/store, LP8xxx backend/device.
// Each area keeps its codes in src/<area>/error-codes.ts (no edit races); this file merges them into one table.
import { dslErrorCodes } from '../dsl/error-codes.js';
import { planErrorCodes } from '../plan/error-codes.js';
import { modelErrorCodes } from '../model/error-codes.js';
import { pruneErrorCodes } from '../prune/error-codes.js';
import { evalErrorCodes } from '../eval/error-codes.js';
import { trainErrorCodes } from '../train/error-codes.js';
import { runErrorCodes } from '../run/error-codes.js';
import { backendErrorCodes } from '../backend/error-codes.js';
import { backendSelectionErrorCodes } from '../backend/selection-error-codes.js';

export interface ErrorInfo { code: string; name: string; title: string }

type AreaTable = Record<string, { name: string; title: string; code?: string }>;

const areas: AreaTable[] = [
  dslErrorCodes, planErrorCodes, modelErrorCodes, pruneErrorCodes, evalErrorCodes, trainErrorCodes, runErrorCodes, backendErrorCodes,
  backendSelectionErrorCodes,
];

export type ErrorCode =
  | keyof typeof dslErrorCodes | keyof typeof planErrorCodes | keyof typeof modelErrorCodes | keyof typeof pruneErrorCodes
  | keyof typeof evalErrorCodes | keyof typeof trainErrorCodes | keyof typeof runErrorCodes | keyof typeof backendErrorCodes
  | keyof typeof backendSelectionErrorCodes;

/** Code → { code, name, title }, in code order. */
export const errorCatalog: Readonly<Record<ErrorCode, ErrorInfo>> = Object.fromEntries(
  areas.flatMap((table) => Object.entries(table)).sort(([a], [b]) => a.localeCompare(b))
    .map(([code, info]) => [code, { code, name: info.name, title: info.title }]),
) as Record<ErrorCode, ErrorInfo>;

/** The catalog entry of a code, or undefined for a code no area has registered. */
export function errorInfo(code: string): ErrorInfo | undefined {
  return (errorCatalog as Record<string, ErrorInfo>)[code];
}
