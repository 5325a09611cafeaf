// Where every command's errors end: user errors (LopperError/LopperErrors) print as `file:line:col error[CODE]:
// message` + code frame + hint, exit code 1, no stack trace; anything else is a bug and prints its stack, exit 2.
import { LopperError, LopperErrors } from '../errors/lopper-error.js';
import { formatError, formatErrors } from '../errors/printer.js';

export const EXIT_OK = 0;
export const EXIT_USER_ERROR = 1;
export const EXIT_INTERNAL_ERROR = 2;

/** Warnings print one line each (plus the hint once per code): they are often many (every missing file). */
export function printWarnings(warnings: readonly LopperError[]): void {
  if (warnings.length === 0) return;
  const hinted = new Set<string>();
  const lines = warnings.map((w) => {
    const first = formatError(w, { severity: 'warning', frame: false }).split('\n')[0]!;
    if (!w.hint || hinted.has(`${w.code}:${w.hint}`)) return first;
    hinted.add(`${w.code}:${w.hint}`);
    return `${first}\n  = hint: ${w.hint}`;
  });
  process.stderr.write(`${lines.join('\n')}\n`);
}

export function printErrors(errors: readonly LopperError[]): void {
  if (errors.length > 0) process.stderr.write(`${formatErrors(errors)}\n\n`);
}

export function reportFailure(e: unknown): number {
  if (e instanceof LopperErrors) {
    printErrors(e.errors);
    process.stderr.write(`${e.errors.length} error${e.errors.length === 1 ? '' : 's'}\n`);
    return EXIT_USER_ERROR;
  }
  if (e instanceof LopperError) {
    printErrors([e]);
    return EXIT_USER_ERROR;
  }
  process.stderr.write(`internal error (a bug in lopper, please report it):\n${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  return EXIT_INTERNAL_ERROR;
}

/** Wraps a command action: its resolved number (or 0) becomes the exit code; failures are reported. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = (await fn(...args)) ?? EXIT_OK;
    } catch (e) {
      process.exitCode = reportFailure(e);
    }
  };
}
