// Every user-facing error code, permanent once released. Append new codes; never renumber.
// Ranges: LP1xxx recipe/DSL, LP2xxx planner, LP3xxx model files and tokenizers, LP4xxx pruning,
// LP5xxx evaluate, LP6xxx training, LP7xxx runner/store, LP8xxx backend/device.
export interface ErrorInfo { code: string; name: string; title: string }

export const errorCatalog = {
} satisfies Record<string, ErrorInfo>;
