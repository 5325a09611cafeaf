// lopper's programmatic API: what the CLI calls, and what users and tests call directly.
export { validate, plan, planText, checkRecipeFile } from './plan/api.js';
export type { ValidationResult, PlanFileOptions } from './plan/api.js';
export { loadRecipe, resolveRecipeText } from './dsl/resolve.js';
export type { LoadOptions, ResolvedRecipe, StageTemplate, StageVariant, MatrixValue } from './dsl/resolve.js';
export { checkRecipe, planChecked } from './plan/plan.js';
export type { CheckOptions, CheckedRecipe, PlanOptions, StageInstance } from './plan/plan.js';
export { canonicalJson, stageKey, changedKeyInputs } from './plan/keys.js';
export type { KeyInputs } from './plan/keys.js';
export { sha256File } from './plan/hash-file.js';
export type { HashFile } from './plan/hash-file.js';
export { planGraph } from './plan/graph-format.js';
export type { GraphFormat, GraphInput } from './plan/graph-format.js';
export type { Plan, PlannedStage, Backend } from './plan/types.js';
export type { Recipe, Stage } from './dsl/recipe-types.js';
export { schemaPath, recipeSchema } from './dsl/schema.js';
export { LopperError, LopperErrors, StageCancelled } from './errors/lopper-error.js';
export type { SourceLocation } from './errors/lopper-error.js';
export { errorCatalog, errorInfo } from './errors/catalog.js';
export { formatError, formatErrors } from './errors/printer.js';
// The runner (src/run/): executes a plan with content-addressed caching; watch mode.
export { run, watch, explainStages } from './run/index.js';
export { exportModel, EXPORT_DTYPES } from './run/export.js';
export type { ExportOptions, ExportResult, ExportFormat, ExportDtype } from './run/export.js';
export type { RunOptions, RunResult, WatchOptions, WatchHandle, StageExplanation } from './run/index.js';
// Reports (src/report/): one self-contained HTML page of a run's stored outputs, or of two runs side by side.
export { report, compareReport, renderReport, collectReport, sourceFromRun, sourceFromOutcomes } from './report/index.js';
export type { ReportOptions, ReportResult, CompareReportOptions, ReportData, ReportSource, ReportStage } from './report/index.js';
