/**
 * The command line's stdout options: the format, and the table's own.
 *
 * @module
 */
import { flag, type Parsed, single } from "../argv.ts";
import { UsageError } from "../errors.ts";
import { oneOf } from "../options.ts";
import { type FormatName, FORMATS } from "./stdout.ts";
import type { TableOptions } from "./table.ts";

export const FORMAT_OPTION = {
  format: single({
    short: "f",
    metavar: "FORMAT",
    help: "table (default), json (JSON Lines), ecs (Elastic Common\n" +
      "Schema), tracee (Tracee's JSON) or none (with --ipfix)",
    parse: (text, name): FormatName => oneOf(name, text, FORMATS),
  }),
};

export const TABLE_OPTIONS = {
  wide: flag(
    "w",
    "table: full IPv6 addresses and names, plus UID, RTT,\nRETRANS and CGROUP (or container) columns",
  ),
  utc: flag(undefined, "table: times in UTC (default: local time, its UTC offset\nin the header)"),
  date: flag(undefined, "table: the date with each time"),
};

/** The format and the table's settings; a table option with another format is refused. */
export function outputOf(
  o: Parsed<typeof FORMAT_OPTION & typeof TABLE_OPTIONS>,
): { format: FormatName; table: TableOptions } {
  const format = o.format ?? "table";
  if (format !== "table" && (o.wide || o.utc || o.date)) {
    const used = o.wide ? "--wide" : o.utc ? "--utc" : "--date";
    throw new UsageError(`${used} is for the table format, not --format ${format}`);
  }
  return { format, table: { utc: o.utc, date: o.date, wide: o.wide } };
}
