/**
 * A user mistake: printed as one line (no stack trace) and exit code 2.
 * Everything that is not a UsageError is a bug or an environment failure.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super(message);
  }
}

/** Exit code for user mistakes, as documented in the README. */
export const USAGE_EXIT = 2;

export function isUsageError(e: unknown): e is UsageError {
  return e instanceof UsageError;
}

/**
 * A run that cannot continue for a reason that is not a flag mistake (non-finite samples,
 * a failed worker): printed as one line with exit code 1, never a stack trace.
 */
export class RunError extends Error {
  override readonly name = 'RunError';
  constructor(message: string) {
    super(message);
  }
}

/**
 * The first line of an error's message (or of the thrown value as text), without ANSI colour
 * codes: the part of a library's multi-line message (onnxruntime appends native log lines) that
 * fits the one-line error the CLI prints.
 */
export function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split('\n')[0] ?? '').replace(/\x1b\[[0-9;]*m/g, '').trim();
}
