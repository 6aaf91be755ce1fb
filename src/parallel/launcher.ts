/**
 * Processes and machines. A run is split over WORLD_SIZE ranks; the rank of this process
 * comes from the usual launcher variables (torchrun: RANK, WORLD_SIZE, LOCAL_RANK; Slurm:
 * SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID), so `torchrun --no-python`, `srun` or a
 * Kubernetes indexed job can spread one command over several machines. `--nproc_per_node N`
 * additionally starts N workers of this same command on this machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { RunError, UsageError } from '../core/errors.js';

export interface DistEnv {
  rank: number;
  world: number;
  localRank: number;
}

function intVar(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`environment variable ${name}=${v}: expected a non-negative integer`);
  return Number(v);
}

let warnedDisagreement = false;

/**
 * This process's place in the run, from the launcher variables (a lone process: 0 of 1).
 * Half a set (RANK without WORLD_SIZE) is refused: silently sampling every seed on every rank
 * would duplicate the whole run. When both sets are complete and disagree (torchrun started
 * by srun), torchrun's RANK/WORLD_SIZE win, and a note says so.
 */
export function distEnv(env: NodeJS.ProcessEnv = process.env): DistEnv {
  const sets: [string, string, string][] = [
    ['RANK', 'WORLD_SIZE', 'LOCAL_RANK'],
    ['SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID'],
  ];
  const found: { names: [string, string, string]; env: DistEnv }[] = [];
  for (const names of sets) {
    const [r, w, l] = names;
    const rank = intVar(env, r);
    const world = intVar(env, w);
    if (rank === undefined && world === undefined) continue;
    if (rank === undefined || world === undefined) {
      const [have, missing] = rank === undefined ? [w, r] : [r, w];
      throw new UsageError(`environment: ${have}=${env[have]} is set but ${missing} is not; a launcher sets both (unset ${have} for a single process)`);
    }
    if (world < 1 || rank >= world) throw new UsageError(`environment: ${r}=${rank} is not below ${w}=${world}`);
    found.push({ names, env: { rank, world, localRank: intVar(env, l) ?? 0 } });
  }
  if (found.length === 0) return { rank: 0, world: 1, localRank: 0 };
  const [first, second] = found;
  if (second && (second.env.rank !== first!.env.rank || second.env.world !== first!.env.world) && !warnedDisagreement) {
    warnedDisagreement = true;
    const [r1, w1] = first!.names;
    const [r2, w2] = second.names;
    process.stderr.write(`adasde: note: ${r1}=${first!.env.rank} ${w1}=${first!.env.world} and ${r2}=${second.env.rank} ${w2}=${second.env.world} disagree; using ${r1}/${w1}\n`);
  }
  return first!.env;
}

/**
 * The reference's split of a seed list (EDM generate.py): seeds are cut into
 * ceil(n / (batch * world)) * world consecutive batches of near-equal size and rank r takes
 * batches r, r + world, ... Returns this rank's batches.
 */
export function rankBatches(seeds: readonly number[], batch: number, rank: number, world: number): number[][] {
  const numBatches = (Math.floor((seeds.length - 1) / (batch * world)) + 1) * world;
  // torch.tensor_split: the first (n % k) parts get one extra element.
  const n = seeds.length;
  const base = Math.floor(n / numBatches);
  const longer = n % numBatches;
  const all: number[][] = [];
  let off = 0;
  for (let b = 0; b < numBatches; b++) {
    const size = base + (b < longer ? 1 : 0);
    all.push(seeds.slice(off, off + size));
    off += size;
  }
  return all.filter((_, b) => b % world === rank).filter((b) => b.length > 0);
}

/** Whether this process is a worker started by `runWorkers` (with the IPC channel to its launcher). */
export const isWorker = (): boolean => process.env.ADASDE_WORKER === '1' && typeof process.send === 'function';

/**
 * This rank's share [lo, hi) of one training batch of B trajectories: contiguous, the later
 * ranks taking the extra ones. (Seeds for images are split by `rankBatches`, EDM's way, into
 * many batches; a training batch is one all-reduce step, so each rank takes one slice of it.)
 */
export function shard(B: number, rank: number, world: number): [number, number] {
  return [Math.floor((B * rank) / world), Math.floor((B * (rank + 1)) / world)];
}

/**
 * Start `n` workers running this same command line with `--nproc_per_node 1` and the rank
 * variables set (global ranks `outer.rank * n + local`). Resolves when all succeed; if one
 * fails, the others are stopped and the failure is reported.
 */
export async function runWorkers(n: number, argv: readonly string[], outer: DistEnv = distEnv(), onMessage?: (msg: unknown) => void): Promise<void> {
  const script = argv[1]!;
  const args = stripFlag(argv.slice(2), 'nproc_per_node');
  args.push('--nproc_per_node', '1');
  const children: ChildProcess[] = [];
  const world = outer.world * n;
  // Rendezvous for the training all-reduce (src/parallel/allreduce.ts): on one machine the
  // launcher picks a free loopback port; across machines the outer launcher's MASTER_* stand.
  const master = outer.world === 1 ? { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(await freePort()) } : {};
  // The failure to report is the first one, not one of the workers stopped because of it.
  let firstFailure: { code: number; stderr: string } | undefined;
  const stopped = new Set<ChildProcess>();
  await Promise.all(
    Array.from({ length: n }, (_, local) => {
      const env = {
        ...process.env,
        RANK: String(outer.rank * n + local),
        WORLD_SIZE: String(world),
        LOCAL_RANK: String(local),
        ADASDE_WORKER: '1',
        // Each worker's share of this machine's cores (used when --threads is 0).
        ADASDE_WORKER_THREADS: String(Math.max(1, Math.floor(availableParallelism() / n))),
        ...master,
        SLURM_PROCID: '',
        SLURM_NTASKS: '',
        SLURM_LOCALID: '',
      };
      const child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      if (onMessage) child.on('message', onMessage);
      children.push(child);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      return new Promise<void>((resolve) => {
        // 'close' comes after the worker's stderr has been read to the end.
        child.on('close', (code, signal) => {
          const c = code ?? (signal ? 128 : 1);
          if (c !== 0 && !stopped.has(child)) {
            firstFailure ??= { code: c, stderr };
            for (const other of children) {
              if (other !== child && other.exitCode === null && other.signalCode === null) {
                stopped.add(other);
                other.kill('SIGTERM');
              }
            }
          }
          resolve();
        });
      });
    }),
  );
  const failed = firstFailure as { code: number; stderr: string } | undefined;
  if (failed) {
    const line = failed.stderr.trim().split('\n').find((l) => l.startsWith('adasde:')) ?? failed.stderr.trim().split('\n')[0] ?? '';
    const msg = line.replace(/^adasde: (error: )?/, '');
    if (failed.code === 2) throw new UsageError(msg);
    throw new RunError(`a worker failed (exit ${failed.code}): ${msg}`);
  }
}

/** Remove `--flag value` / `--flag=value` from an argument list. */
export function stripFlag(args: readonly string[], flag: string): string[] {
  const out: string[] = [];
  for (let k = 0; k < args.length; k++) {
    const a = args[k]!;
    if (a === `--${flag}`) {
      k++;
      continue;
    }
    if (a.startsWith(`--${flag}=`)) continue;
    out.push(a);
  }
  return out;
}

/** A currently free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
