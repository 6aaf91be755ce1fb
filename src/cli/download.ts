/** URL flags on the command line: download once into the cache with a progress bar (src/io/download.ts). */
import { fetchToCache, isUrl } from '../io/download.js';
import { Progress } from './progress.js';

/** `spec` itself, or for an http(s) URL the path of its cached download. */
export async function localFile(spec: string, flag: string, quiet: boolean): Promise<string> {
  if (!isUrl(spec)) return spec;
  let bar: Progress | undefined;
  let last = 0;
  const started = Date.now();
  let size = 0;
  const path = await fetchToCache(spec, {
    flag,
    onProgress: (done, total) => {
      size = done;
      bar ??= new Progress(total ?? 0, quiet, 'bytes', '{bar} {value}/{total} bytes | ETA {eta_formatted}');
      bar.advance(done - last, 0);
      last = done;
    },
  }).finally(() => bar?.stop());
  if (!quiet && bar) process.stderr.write(`adasde: downloaded ${spec} (${size} bytes in ${((Date.now() - started) / 1000).toFixed(1)} s) -> ${path}\n`);
  return path;
}
