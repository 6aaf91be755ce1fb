/**
 * The flag reading every benchmark does: `--name value` pairs from a fixed list, anything else
 * one line on stderr and exit 2 (prefixed with the benchmark's name).
 */
export interface BenchArgs {
  /** Prints `bench/<name>: message` and exits 2. */
  fail(message: string): never;
  /** The value of --name, or `def`. */
  str(name: string, def: string): string;
  /** An integer --name >= min, or `def`. */
  int(name: string, def: number, min: number): number;
  /** --name was given. */
  has(name: string): boolean;
}

export function benchArgs(bench: string, flags: readonly string[], argv: readonly string[] = process.argv.slice(2)): BenchArgs {
  const fail = (message: string): never => {
    console.error(`bench/${bench}: ${message}`);
    process.exit(2);
  };
  for (let k = 0; k < argv.length; k += 2) {
    const name = argv[k]!.replace(/^--/, '');
    if (!argv[k]!.startsWith('--') || !flags.includes(name)) fail(`unknown argument ${argv[k]} (flags: ${flags.map((f) => `--${f}`).join(' ')})`);
    if (argv[k + 1] === undefined) fail(`--${name} needs a value`);
  }
  const str = (name: string, def: string): string => {
    const k = argv.indexOf(`--${name}`);
    return k >= 0 ? argv[k + 1]! : def;
  };
  const int = (name: string, def: number, min: number): number => {
    const v = Number(str(name, String(def)));
    if (!Number.isInteger(v) || v < min) fail(`--${name} must be an integer >= ${min}, got ${str(name, '')}`);
    return v;
  };
  return { fail, str, int, has: (name) => argv.includes(`--${name}`) };
}
