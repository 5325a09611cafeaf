// LP2xxx: the planner (references, graph, layer ranges, files). Codes are permanent; append, never renumber.
import type { ErrorInfo } from '../errors/catalog.js';

export const planErrorCodes = {
  LP2001: { code: 'LP2001', name: 'UnknownReference', title: 'A reference names no model, dataset or stage' },
  LP2002: { code: 'LP2002', name: 'WrongReferenceKind', title: 'A reference names a stage or entry of the wrong output kind' },
  LP2003: { code: 'LP2003', name: 'DependencyCycle', title: 'Stages reference each other in a cycle' },
  LP2004: { code: 'LP2004', name: 'DuplicateStageId', title: 'Two stages (or matrix instances) have the same id' },
  LP2005: { code: 'LP2005', name: 'AmbiguousName', title: 'A stage has the same name as a models: or datasets: entry' },
  LP2006: { code: 'LP2006', name: 'EmptyLayerRange', title: 'A layer range [start, end) has start >= end' },
  LP2007: { code: 'LP2007', name: 'LayerRangeBeyondModel', title: 'A layer range reaches past the model\'s last layer' },
  LP2008: { code: 'LP2008', name: 'FileNotFound', title: 'A model or dataset file does not exist' },
  LP2009: { code: 'LP2009', name: 'MatrixJoinEmpty', title: 'Matrix-expanded inputs of a stage have no combination in common' },
  LP2010: { code: 'LP2010', name: 'WrongDatasetFormat', title: 'A dataset of the wrong format is used' },
  LP2011: { code: 'LP2011', name: 'ModelConfigUnreadable', title: 'A model\'s config.json or header cannot be read' },
  LP2012: { code: 'LP2012', name: 'WindowBeyondContext', title: 'Perplexity windows are longer than a model\'s context' },
  LP2013: { code: 'LP2013', name: 'IncompatibleMethodOptions', title: 'Pruning-method options of connected stages do not fit together' },
} satisfies Record<string, ErrorInfo>;

export type PlanErrorCode = keyof typeof planErrorCodes;
