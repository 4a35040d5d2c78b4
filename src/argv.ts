/**
 * A small command-line parser over a declarative option table (src/args.ts
 * holds netflow's table). It exists because node:util's parseArgs reads
 * `--format --cgroup X` and `--max-flows -1` as ambiguous, keeps the last of
 * repeated options, and accepts empty values. The rules here:
 *
 * - `--name value`, `--name=value`, `-n value`, `-nvalue`; flags cluster (`-46v`).
 * - A value is the next argument unless that looks like an option; a negative
 *   number (`-1`) is a value, so its validator can say what is wrong with it.
 * - A missing, empty or whitespace-only value is an error.
 * - A single-valued option given twice is an error; a repeatable option
 *   collects every value in order; a flag given twice is still just set.
 * - `--` ends the options; netflow takes no positional arguments.
 *
 * Every error is a {@link UsageError} with one line naming the option.
 *
 * @module
 */
import { UsageError } from "./errors.ts";
import { shown } from "./options.ts";

/** A flag: present or not. */
export interface FlagSpec {
  readonly kind: "flag";
  readonly short?: string;
  /** The help line(s), without the option name. */
  readonly help: string;
}

/** An option with a value, parsed (and validated) by `parse`, which throws UsageError. */
export interface ValueSpec<T> {
  readonly kind: "single" | "repeatable";
  readonly short?: string;
  /** The value's name in the help, e.g. `N`, `PATH`. */
  readonly metavar: string;
  readonly help: string;
  /** Turns the text into a value; `flag` is `--name`, for error messages. */
  readonly parse: (text: string, flag: string) => T;
}

export type OptionSpec = FlagSpec | ValueSpec<unknown>;

/** What the parser gives for one option of the table. */
export type ParsedValue<S> = S extends FlagSpec ? boolean
  : S extends ValueSpec<infer T> ? (S["kind"] extends "repeatable" ? T[] : T | undefined)
  : never;

export type Parsed<Table extends Record<string, OptionSpec>> = {
  -readonly [K in keyof Table]: ParsedValue<Table[K]>;
};

export function flag(short: string | undefined, help: string): FlagSpec {
  return short === undefined ? { kind: "flag", help } : { kind: "flag", short, help };
}

export function single<T>(spec: Omit<ValueSpec<T>, "kind">): ValueSpec<T> & { kind: "single" } {
  return { ...spec, kind: "single" };
}

export function repeatable<T>(
  spec: Omit<ValueSpec<T>, "kind">,
): ValueSpec<T> & { kind: "repeatable" } {
  return { ...spec, kind: "repeatable" };
}

/** An argument that is an option, not a value: `-x`, `--x`; `-` and `-1` are values. */
function isOption(arg: string): boolean {
  // "-1" is a (negative) value, but -4 and -6 (and -46) are the IP version flags.
  return arg.length > 1 && arg.startsWith("-") && (!/^-\d/.test(arg) || /^-[46]+$/.test(arg));
}

/** Parses `argv` against `table`; every option of the table is in the result. */
export function parseArgv<Table extends Record<string, OptionSpec>>(
  argv: readonly string[],
  table: Table,
): Parsed<Table> {
  const result: Record<string, unknown> = {};
  const given = new Map<string, string>();
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(table)) {
    result[name] = spec.kind === "flag" ? false : spec.kind === "repeatable" ? [] : undefined;
    if (spec.short !== undefined) byShort.set(spec.short, name);
  }

  const take = (name: string, spec: OptionSpec, inline: string | undefined, i: number) => {
    const flagName = `--${name}`;
    if (spec.kind === "flag") {
      if (inline !== undefined) throw new UsageError(`${flagName} takes no value`);
      result[name] = true;
      return i;
    }
    let text = inline;
    if (text === undefined) {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`${flagName} needs a value (${spec.metavar})`);
      if (isOption(next)) {
        throw new UsageError(
          `${flagName} needs a value (${spec.metavar}), but the next argument is the option ${
            shown(next)
          }`,
        );
      }
      text = next;
      i++;
    }
    if (text.trim() === "") throw new UsageError(`${flagName} needs a non-empty value`);
    if (spec.kind === "single") {
      const before = given.get(name);
      if (before !== undefined) {
        throw new UsageError(
          `${flagName} is given twice (${shown(before)}, then ${shown(text)}); give it once`,
        );
      }
      given.set(name, text);
      result[name] = spec.parse(text, flagName);
    } else {
      (result[name] as unknown[]).push(spec.parse(text, flagName));
    }
    return i;
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      const rest = argv[i + 1];
      if (rest !== undefined) throw unexpected(rest);
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const spec = Object.hasOwn(table, name) ? table[name] : undefined;
      if (spec === undefined) throw unknownOption(`--${name}`, Object.keys(table));
      i = take(name, spec, eq < 0 ? undefined : arg.slice(eq + 1), i);
    } else if (isOption(arg)) {
      // A cluster of short options; a value option takes the rest of the cluster.
      for (let j = 1; j < arg.length; j++) {
        const name = byShort.get(arg[j]!);
        if (name === undefined) throw unknownOption(`-${arg[j]}`, Object.keys(table));
        const spec = table[name]!;
        if (spec.kind === "flag") {
          take(name, spec, undefined, i);
          continue;
        }
        const rest = arg.slice(j + 1).replace(/^=/, "");
        i = take(name, spec, rest === "" ? undefined : rest, i);
        break;
      }
    } else {
      throw unexpected(arg);
    }
  }
  return result as Parsed<Table>;
}

function unexpected(arg: string): UsageError {
  return new UsageError(`Unexpected argument ${shown(arg)} (netflow takes only options)`);
}

function unknownOption(option: string, names: string[]): UsageError {
  const typed = option.replace(/^-+/, "");
  const near = names.filter((n) =>
    typed.length > 1 && (n.startsWith(typed) || distance(n, typed) <= 2)
  );
  const hint = near.length > 0 ? ` (did you mean ${near.map((n) => `--${n}`).join(" or ")}?)` : "";
  return new UsageError(`Unknown option ${shown(option)}${hint}`);
}

/** Levenshtein distance, for suggestions. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        prev[j]! + 1,
        row[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** `text` in lines of at most `width` characters, broken at spaces (a longer word stands alone). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** The options part of a usage text, from the table: one entry per option, in order. */
export function optionsHelp(table: Record<string, OptionSpec>): string {
  const INDENT = 29, WIDTH = 80;
  return Object.entries(table).map(([name, spec]) => {
    const head = `  ${spec.short === undefined ? "    " : `-${spec.short}, `}--${name}${
      spec.kind === "flag" ? "" : ` ${spec.metavar}`
    }${spec.kind === "repeatable" ? " ..." : ""}`;
    const [first = "", ...more] = wrap(spec.help.replace(/\s*\n\s*/g, " "), WIDTH - INDENT);
    const lines = head.length < INDENT - 1
      ? [`${head.padEnd(INDENT)}${first}`]
      : [head, `${" ".repeat(INDENT)}${first}`];
    return [...lines, ...more.map((l) => `${" ".repeat(INDENT)}${l}`)].join("\n");
  }).join("\n");
}
