/**
 * Ctrl-C and SIGTERM for commands that write: no partial file is ever under a final name
 * (src/io/atomic.ts), so an interrupted run removes the temp files it has in flight (and
 * what `cleanup` names), and exits 130 as a shell expects.
 */
import { removePendingTempFilesSync } from '../io/atomic.js';

/** Installs the handlers; returns the function that removes them again. */
export function onInterrupt(cleanup: () => void = () => {}): () => void {
  const handler = (): void => {
    removePendingTempFilesSync();
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
