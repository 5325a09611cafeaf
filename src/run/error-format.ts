// How the runner prints an error (watch mode, command failures): user errors through the project's printer
// (`file:line:col error[CODE]: message`, code frame, hint); anything else as its message.
import { LopperError, LopperErrors } from '../errors/lopper-error.js';
import { formatErrors } from '../errors/printer.js';

export function formatError(e: unknown): string {
  if (e instanceof LopperErrors) return formatErrors(e.errors);
  if (e instanceof LopperError) return formatErrors([e]);
  return e instanceof Error ? `error: ${e.message}` : `error: ${String(e)}`;
}
