/** A bar format for work that spends no network evaluations (feature extraction). */
export const ITEMS_ONLY = (unit: string): string => `{bar} {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted}`;

/**
 * Progress for long work: a cli-progress bar on stderr with items/s and NFE/s, silenced by
 * --quiet. Inside a worker started by `--nproc_per_node`, progress goes to the launcher over
 * the IPC channel instead, and the launcher draws one bar for all workers.
 */
import cliProgress from 'cli-progress';
import { isWorker } from '../parallel/launcher.js';

export interface ProgressMessage {
  adasdeProgress: { items: number; nfe: number; skipped: number };
}


export class Progress {
  private readonly bar: cliProgress.SingleBar | undefined;
  private done = 0;
  private counted = 0;
  private skippedItems = 0;
  private nfe = 0;
  private readonly started = Date.now();

  constructor(
    private readonly total: number,
    quiet: boolean,
    private readonly unit: string,
    /** A cli-progress format string replacing the default items/s and NFE/s line. */
    format?: string,
    /** Initial values of the custom format's fields. */
    initial: Record<string, string> = {},
  ) {
    if (!quiet && !isWorker()) {
      this.bar = new cliProgress.SingleBar(
        {
          format: format ?? `{bar} {value}/{total} ${unit} | {rate} ${unit}/s | {nfeRate} NFE/s | ETA {eta_formatted}`,
          stream: process.stderr,
          hideCursor: false,
          etaBuffer: 50,
          noTTYOutput: true,
          notTTYSchedule: 10000,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0, { rate: '0.0', nfeRate: '0', ...initial });
    }
  }

  /** Items that were already done (resumed): counted, but not in the rates. */
  skip(n: number): void {
    if (n === 0) return;
    this.done += n;
    this.skippedItems += n;
    if (isWorker()) process.send!({ adasdeProgress: { items: 0, nfe: 0, skipped: n } } satisfies ProgressMessage);
    this.render();
  }

  advance(items: number, nfe: number): void {
    this.done += items;
    this.counted += items;
    this.nfe += nfe;
    if (isWorker()) process.send!({ adasdeProgress: { items, nfe, skipped: 0 } } satisfies ProgressMessage);
    this.render();
  }

  /** Launcher side: fold in a worker's message. */
  fromWorker(msg: unknown): void {
    const p = (msg as Partial<ProgressMessage> | null)?.adasdeProgress;
    if (!p) return;
    if (p.skipped) this.skip(p.skipped);
    if (p.items) this.advance(p.items, p.nfe);
  }

  private render(): void {
    if (!this.bar) return;
    const secs = Math.max((Date.now() - this.started) / 1000, 1e-3);
    this.bar.update(Math.min(this.done, this.total), { rate: (this.counted / secs).toFixed(1), nfeRate: (this.nfe / secs).toFixed(0) });
  }

  /** Set the position directly, with extra fields for a custom format. */
  set(value: number, payload: Record<string, string>): void {
    this.bar?.update(Math.min(value, this.total), payload);
  }

  /** Items counted by `skip` (here and in the workers), for the summary line. */
  get skipped(): number {
    return this.skippedItems;
  }

  /**
   * Stops the bar and its redraw timer. Safe to call twice; every owner calls it in a
   * `finally`, since a live timer would keep the process from exiting after an error.
   */
  stop(): void {
    this.bar?.stop();
  }
}
