/**
 * The two kinds of error a user sees. Both are handled once, in the CLI's
 * main: a {@link UsageError} prints usage and exits 2; a {@link NetflowError}
 * prints its one-line message (and `detail` with --verbose) and exits 1.
 *
 * @module
 */

/** A runtime failure, with a one-line message that says what to do. */
export class NetflowError extends Error {
  /** Extra lines shown only with --verbose (for example the verifier log). */
  readonly detail: string | undefined;

  constructor(message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "NetflowError";
    this.detail = options?.detail;
  }
}

/** Bad command-line arguments or library options. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** errno values netflow reacts to. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EAGAIN: 11,
  EACCES: 13,
  EINVAL: 22,
} as const;

/** The hint for a permission failure, shared by every place that can hit one. */
export { PRIVILEGE_HINT } from "./caps.ts";
