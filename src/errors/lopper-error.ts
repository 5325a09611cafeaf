// The one error type lopper reports to users. The CLI prints `file:line:col error[CODE]: message`, a code frame
// and the hint; it never prints a stack trace for a LopperError. Codes are permanent (LPxxxx) and listed in the
// catalog (src/errors/catalog.ts).

export interface SourceLocation {
  file: string;
  line?: number;   // 1-based
  column?: number; // 1-based
  /** 1-based column just past the offending text on `line` (for the code frame's underline). */
  endColumn?: number;
}

export class LopperError extends Error {
  readonly code: string;
  readonly hint?: string;
  readonly location?: SourceLocation;

  constructor(code: string, message: string, options: { hint?: string; location?: SourceLocation; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LopperError';
    this.code = code;
    this.hint = options.hint;
    this.location = options.location;
  }
}

/** Several user errors reported at once (e.g. every schema violation of a recipe). */
export class LopperErrors extends Error {
  readonly errors: LopperError[];
  constructor(errors: LopperError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'LopperErrors';
    this.errors = errors;
  }
}

/** Thrown by stages when their AbortSignal fires; the runner treats it as a clean cancellation. */
export class StageCancelled extends Error {
  constructor(stageId: string) {
    super(`stage ${stageId} was cancelled`);
    this.name = 'StageCancelled';
  }
}
