/** Shared wiring of a sub-command: its option table, validation, and the action. */
import type { Command } from 'commander';
import { addOptions, givenKeys, parseOptions, type OptionsOf, type OptionTable } from '../config/options.js';

/**
 * Adds a sub-command whose options come from `table`; `run` gets the validated options and
 * the keys of those given on the command line (a resumed run refuses flags that would change it).
 */
export function defineCommand<T extends OptionTable>(
  parent: Command,
  name: string,
  description: string,
  table: T,
  run: (opts: OptionsOf<T>, given: ReadonlySet<keyof T & string>) => Promise<void>,
): Command {
  const cmd = parent.command(name).description(description).allowExcessArguments(false);
  addOptions(cmd, table);
  cmd.action(async (raw: Record<string, unknown>) => {
    await run(parseOptions(table, raw), givenKeys(table, raw) as Set<keyof T & string>);
  });
  return cmd;
}
