// LP1xxx: the recipe DSL (YAML syntax, schema, vars, matrix, --set). Codes are permanent; append, never renumber.
import type { ErrorInfo } from '../errors/catalog.js';

export const dslErrorCodes = {
  LP1001: { code: 'LP1001', name: 'YamlSyntaxError', title: 'The recipe is not valid YAML' },
  LP1002: { code: 'LP1002', name: 'DuplicateKey', title: 'A key appears twice in the same mapping' },
  LP1003: { code: 'LP1003', name: 'UnknownKey', title: 'A key the recipe schema does not define' },
  LP1004: { code: 'LP1004', name: 'MissingField', title: 'A required field is absent' },
  LP1005: { code: 'LP1005', name: 'WrongType', title: 'A value has the wrong type' },
  LP1006: { code: 'LP1006', name: 'InvalidValue', title: 'A value is not one of the allowed values' },
  LP1007: { code: 'LP1007', name: 'ValueOutOfRange', title: 'A number is outside its allowed range' },
  LP1008: { code: 'LP1008', name: 'UnknownStageKind', title: 'A stage kind lopper does not know' },
  LP1009: { code: 'LP1009', name: 'InvalidName', title: 'A model, dataset, stage or variable name has characters lopper does not allow' },
  LP1010: { code: 'LP1010', name: 'UnknownVariable', title: 'A ${vars.x} or ${matrix.x} reference names no variable' },
  LP1011: { code: 'LP1011', name: 'InvalidInterpolation', title: 'A ${...} expression lopper cannot read' },
  LP1012: { code: 'LP1012', name: 'InvalidOverride', title: 'A --set override is malformed' },
  LP1013: { code: 'LP1013', name: 'MatrixVariableConflict', title: 'A matrix variable is already bound by an upstream stage' },
  LP1014: { code: 'LP1014', name: 'RecipeUnreadable', title: 'The recipe file cannot be read' },
  LP1015: { code: 'LP1015', name: 'ConflictingFields', title: 'Fields that exclude each other are both given' },
  LP1016: { code: 'LP1016', name: 'MissingAlternative', title: 'None of a set of alternative fields is given' },
  LP1017: { code: 'LP1017', name: 'SchemaViolation', title: 'A value does not have the shape the schema requires' },
} satisfies Record<string, ErrorInfo>;

export type DslErrorCode = keyof typeof dslErrorCodes;
