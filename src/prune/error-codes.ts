// LP4xxx: pruning (group, score, aggregate, prune stages and `lopper inspect`). Merged into src/errors/catalog.ts
// by the lead; codes are permanent.
import type { ErrorInfo } from '../errors/catalog.js';

export const pruneErrorCodes = {
  LP4001: { code: 'LP4001', name: 'LayerRangeInvalid', title: 'A layer range is not [start, end] inside the model' },
  LP4002: { code: 'LP4002', name: 'HeadsNotDivisible', title: 'Query heads are not a multiple of key/value heads' },
  LP4003: { code: 'LP4003', name: 'NothingToPrune', title: 'The group stage selects no group' },
  LP4004: { code: 'LP4004', name: 'PrunedAwayEverything', title: 'Pruning would leave a layer without heads, channels or layers' },
  LP4005: { code: 'LP4005', name: 'CalibrationTooShort', title: 'The calibration dataset has too few records of seq_len tokens' },
  LP4006: { code: 'LP4006', name: 'CalibrationMissing', title: 'Taylor importance needs a calibration dataset' },
  LP4007: { code: 'LP4007', name: 'StageInputInvalid', title: 'An upstream pruning stage output is missing or malformed' },
  LP4008: { code: 'LP4008', name: 'TargetParamsUnreachable', title: 'No ratio reaches target_params' },
  LP4009: { code: 'LP4009', name: 'PruneParamsInvalid', title: 'Prune stage parameters are inconsistent' },
  LP4010: { code: 'LP4010', name: 'CalibrationDatasetFormat', title: 'The dataset format cannot be used for calibration' },
  LP4011: { code: 'LP4011', name: 'GradientMissing', title: 'The model did not return a gradient for a scored parameter' },
  LP4012: { code: 'LP4012', name: 'ImportanceModeMismatch', title: 'The importance kind does not score the groups of this group mode' },
  LP4013: { code: 'LP4013', name: 'MetricNotStandardizable', title: 'A layer\'s FLAP metric is the same for every channel' },
  LP4014: { code: 'LP4014', name: 'BiasCompensationUnsupported', title: 'Bias compensation cannot be applied to this model or importance' },
} satisfies Record<string, ErrorInfo>;

export type PruneErrorCode = keyof typeof pruneErrorCodes;
