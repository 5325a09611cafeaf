// Runner and store error codes (LP7xxx). The lead merges these into src/errors/catalog.ts.
import type { ErrorInfo } from '../errors/catalog.js';

export const runErrorCodes = {
  LP7001: { code: 'LP7001', name: 'UnknownStageSelection', title: 'A stage named on the command line is not in the plan' },
  LP7002: { code: 'LP7002', name: 'StageFailed', title: 'A stage threw while running' },
  LP7003: { code: 'LP7003', name: 'StoreLockTimeout', title: 'Another lopper process held a stage lock for too long' },
  LP7004: { code: 'LP7004', name: 'UnknownRun', title: 'No run record matches the given id' },
  LP7005: { code: 'LP7005', name: 'PlannerUnavailable', title: 'The recipe planner could not be loaded' },
  LP7006: { code: 'LP7006', name: 'RunCancelled', title: 'The run was interrupted' },
  LP7007: { code: 'LP7007', name: 'UnknownStageModule', title: 'No stage module is registered for a stage kind' },
  LP7008: { code: 'LP7008', name: 'StoreUnreadable', title: 'The store holds an entry lopper cannot read' },
  LP7009: { code: 'LP7009', name: 'UpstreamNotStored', title: 'An upstream stage did not finish writing its output, so this stage\'s output is not stored' },
  LP7010: { code: 'LP7010', name: 'ExportRequestInvalid', title: 'An export names no model, or a format or dtype lopper does not write' },
  LP7011: { code: 'LP7011', name: 'ReportInputUnreadable', title: 'A report cannot be made: the store is missing, or a stage output it reads is damaged' },
} satisfies Record<string, ErrorInfo>;

export type RunErrorCode = keyof typeof runErrorCodes;
