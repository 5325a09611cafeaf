// LP8050+: backend selection (src/backend/index.ts). Kept apart from error-codes.ts (device setup, another owner)
// to avoid edit races; the lead merges both into src/errors/catalog.ts.
import type { ErrorInfo } from '../errors/catalog.js';

export const backendSelectionErrorCodes = {
  LP8050: { code: 'LP8050', name: 'BackendUnavailable', title: 'The requested tfjs backend is not installed or failed to start' },
} satisfies Record<string, ErrorInfo>;
