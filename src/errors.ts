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

  /**
   * An error for the user.
   *
   * @param message One sentence-case line: what failed, the value in quotes, and what to do.
   * @param options `cause`: the underlying error; `detail`: lines for --verbose.
   */
  constructor(message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "NetflowError";
    this.detail = options?.detail;
  }
}

/**
 * Bad command-line arguments or library options. The message is one line
 * naming the option and the value: `maxFlows takes a whole number of at least
 * 1, not 0` (the command line says `--max-flows` where the library says
 * `maxFlows`, in the same words).
 */
export class UsageError extends Error {
  /**
   * A usage error.
   *
   * @param message The one line, without a "netflow: " prefix.
   */
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
