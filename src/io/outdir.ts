/**
 * Output folders. Every command that writes creates its folder through `prepareOutdir`, so a
 * bad destination is refused up front in one line naming the flag, instead of surfacing later
 * as a stack trace (EEXIST, ENOTDIR, EPERM) or, under /proc, as Node's recursive mkdir spinning
 * forever (procfs answers ENOENT for a directory it will never let anyone create).
 */
import { accessSync, constants, lstatSync, mkdirSync, statfsSync, statSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { RunError, UsageError } from '../core/errors.js';

/**
 * statfs magic numbers of kernel file systems that hold no user files (linux/magic.h):
 * proc, sysfs, cgroup, cgroup2, debugfs, tracefs, securityfs, devpts, bpf, pstore.
 */
const KERNEL_FS = new Map<number, string>([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x1cd1, 'devpts'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
]);

/** The kernel pseudo file system `path` (which exists) lives on, if any. */
function kernelFs(path: string): string | undefined {
  try {
    return KERNEL_FS.get(Number(statfsSync(path).type));
  } catch {
    return undefined;
  }
}

const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EEXIST: 'a file is in the way',
  ENOTDIR: 'a path component is a file, not a folder',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many levels of symbolic links',
  EIO: 'input/output error',
};

/** One line for a failed file-system call on `path`, or undefined if `e` is not one. */
export function describeFsError(e: unknown): { code: string; text: string } | undefined {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string' || !(code in ERRNO_TEXT)) return undefined;
  return { code, text: ERRNO_TEXT[code]! };
}

/**
 * Makes sure `path` is a writable folder, creating it and its parents as needed. `flag` names
 * the option it came from (`--outdir`) for the message. Bad destinations are UsageErrors (exit
 * 2); a full disk is a RunError (exit 1: the flag was fine, the machine is not).
 */
export function prepareOutdir(path: string, flag: string): void {
  const abs = resolve(path);
  const say = (what: string) => new UsageError(`${flag}: ${path} ${what}`);
  // The nearest existing ancestor decides where the folder would be created.
  let existing = abs;
  for (;;) {
    let isLink = false;
    try {
      isLink = lstatSync(existing).isSymbolicLink();
    } catch {
      const up = dirname(existing);
      if (up === existing) break;
      existing = up;
      continue;
    }
    let st;
    try {
      st = statSync(existing);
    } catch (e) {
      if (isLink) throw say(existing === abs ? 'is a dangling symbolic link' : `lies under ${existing}, a dangling symbolic link`);
      const d = describeFsError(e);
      throw say(`cannot be checked (${existing}: ${d?.text ?? (e as Error).message})`);
    }
    if (!st.isDirectory()) {
      throw say(existing === abs ? 'exists and is not a folder (expected a folder)' : `lies under ${existing}, which is not a folder`);
    }
    break;
  }
  let real = existing;
  try {
    real = realpathSync(existing);
  } catch {
    // Checked above that it exists; a race only weakens the /dev test below.
  }
  const fs = kernelFs(existing);
  if (fs) throw say(`is on ${fs}, a kernel file system (expected a folder on a disk)`);
  if ((real === '/dev' || real.startsWith('/dev/')) && !(real === '/dev/shm' || real.startsWith('/dev/shm/'))) {
    throw say('is under /dev, the device folder (expected a folder on a disk)');
  }
  if (existing !== abs) {
    try {
      mkdirSync(abs, { recursive: true });
    } catch (e) {
      const d = describeFsError(e);
      if (d?.code === 'ENOSPC' || d?.code === 'EDQUOT' || d?.code === 'EIO') throw new RunError(`${flag}: cannot create ${path}: ${d.text}`);
      throw say(`cannot be created (${d?.text ?? (e as Error).message})`);
    }
  }
  try {
    accessSync(abs, constants.W_OK | constants.X_OK);
  } catch (e) {
    const d = describeFsError(e);
    throw say(`is not writable (${d?.text ?? (e as Error).message})`);
  }
}

/** `prepareOutdir` for the folder of an output file (`fid ref --dest x/r.npz`). */
export function prepareOutputFile(file: string, flag: string): void {
  const abs = resolve(file);
  try {
    if (statSync(abs).isDirectory()) throw new UsageError(`${flag}: ${file} is a folder (expected a file name)`);
  } catch (e) {
    if (e instanceof UsageError) throw e;
  }
  prepareOutdir(dirname(abs), flag);
}
