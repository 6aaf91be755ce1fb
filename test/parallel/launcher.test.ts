/** Launcher variables, the reference's seed split, and what each --nproc_per_node worker receives. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { distEnv, rankBatches, runWorkers, stripFlag } from '../../src/parallel/launcher.js';

test('distEnv: torchrun and Slurm variables, a lone process otherwise', () => {
  assert.deepEqual(distEnv({}), { rank: 0, world: 1, localRank: 0 });
  assert.deepEqual(distEnv({ RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '1' }), { rank: 3, world: 8, localRank: 1 });
  assert.deepEqual(distEnv({ SLURM_PROCID: '5', SLURM_NTASKS: '6', SLURM_LOCALID: '0' }), { rank: 5, world: 6, localRank: 0 });
  assert.throws(() => distEnv({ RANK: '8', WORLD_SIZE: '8' }), UsageError);
  assert.throws(() => distEnv({ RANK: 'x', WORLD_SIZE: '2' }), UsageError);
  // Half a set would make every process sample every seed: refused.
  assert.throws(() => distEnv({ RANK: '1' }), /RANK=1 is set but WORLD_SIZE is not/);
  assert.throws(() => distEnv({ SLURM_NTASKS: '4' }), /SLURM_NTASKS=4 is set but SLURM_PROCID is not/);
  // Both complete and different (torchrun under srun): torchrun's variables win.
  assert.deepEqual(distEnv({ RANK: '3', WORLD_SIZE: '8', SLURM_PROCID: '1', SLURM_NTASKS: '2' }), { rank: 3, world: 8, localRank: 0 });
});

test('rankBatches: EDM generate.py split (tensor_split into ceil(n/(batch*world))*world parts, round robin)', () => {
  const seeds = Array.from({ length: 10 }, (_, k) => k);
  // 10 seeds, batch 3, world 2: 2 * 2 = 4 parts of sizes 3,3,2,2; rank 0 takes parts 0 and 2.
  assert.deepEqual(rankBatches(seeds, 3, 0, 2), [[0, 1, 2], [6, 7]]);
  assert.deepEqual(rankBatches(seeds, 3, 1, 2), [[3, 4, 5], [8, 9]]);
  // Every seed exactly once, whatever the split.
  for (const [batch, world] of [[1, 1], [4, 3], [64, 5], [7, 10]] as const) {
    const all = Array.from({ length: world }, (_, r) => rankBatches(seeds, batch, r, world).flat()).flat().sort((a, b) => a - b);
    assert.deepEqual(all, seeds);
  }
});

test('stripFlag removes both spellings', () => {
  assert.deepEqual(stripFlag(['a', '--nproc_per_node', '3', '--x=1', '--nproc_per_node=2', 'b'], 'nproc_per_node'), ['a', '--x=1', 'b']);
});

test('runWorkers: ranks, world size, rendezvous and a share of the cores for each worker', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'adasde-launch-'));
  const script = join(dir, 'worker.mjs');
  writeFileSync(
    script,
    "import { writeFileSync } from 'node:fs';\n" +
      "const e = process.env;\n" +
      "writeFileSync(process.argv[2] + '/rank' + e.RANK + '.json', JSON.stringify({ argv: process.argv.slice(3), RANK: e.RANK, WORLD_SIZE: e.WORLD_SIZE, LOCAL_RANK: e.LOCAL_RANK, MASTER_PORT: e.MASTER_PORT, THREADS: e.ADASDE_WORKER_THREADS, WORKER: e.ADASDE_WORKER }));\n",
  );
  await runWorkers(2, [process.execPath, script, dir, '--nproc_per_node', '2', '--x'], { rank: 0, world: 1, localRank: 0 });
  const w = [0, 1].map((r) => JSON.parse(readFileSync(join(dir, `rank${r}.json`), 'utf8')) as Record<string, unknown>);
  assert.deepEqual(w.map((x) => [x.RANK, x.WORLD_SIZE, x.LOCAL_RANK, x.WORKER]), [['0', '2', '0', '1'], ['1', '2', '1', '1']]);
  assert.deepEqual(w[0]!.argv, ['--x', '--nproc_per_node', '1']);
  assert.equal(w[0]!.MASTER_PORT, w[1]!.MASTER_PORT);
  assert.ok(Number(w[0]!.THREADS) >= 1);
  // A failing worker: a one-line error, the others stopped.
  writeFileSync(script, "process.stderr.write('adasde: error: --flag: bad\\n'); process.exit(2);\n");
  await assert.rejects(runWorkers(2, [process.execPath, script]), (e: unknown) => e instanceof UsageError && e.message === '--flag: bad');
  // Rank 1 fails while rank 0 is still working: the report is rank 1's error, not the stop of rank 0.
  writeFileSync(script, "if (process.env.RANK === '1') { process.stderr.write('adasde: error: --seeds: bad\\n'); process.exit(2); } else setTimeout(() => {}, 20000);\n");
  const t0 = Date.now();
  await assert.rejects(runWorkers(2, [process.execPath, script]), (e: unknown) => e instanceof UsageError && e.message === '--seeds: bad');
  assert.ok(Date.now() - t0 < 10000, 'the waiting worker was stopped');
});
