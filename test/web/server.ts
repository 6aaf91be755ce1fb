/** `adasde web` as a real process: started, its address read from stdout, stopped with SIGINT. */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { repoRoot } from '../helpers.js';

export interface WebProcess {
  url: string;
  child: ChildProcess;
  /** SIGINT, then the exit code and stderr. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

export function startWebProcess(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<WebProcess> {
  const child = spawn(process.execPath, [resolve(repoRoot, 'bin', 'adasde.js'), 'web', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on('exit', (code, signal) => done({ code, signal })));
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`adasde web printed no address in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    const onData = () => {
      const m = /(http:\/\/[^\s]+\/)/.exec(stdout);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      ok({
        url: m[1]!,
        child,
        stop: async () => {
          child.kill('SIGINT');
          return { ...(await exited), stderr };
        },
      });
    };
    child.stdout!.on('data', onData);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      fail(new Error(`adasde web exited (${code}) before printing an address; stderr: ${stderr.trim()}`));
    });
  });
}
