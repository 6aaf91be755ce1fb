import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { removeStaleTempFiles, tempPathFor, writeFileAtomic, writeFileAtomicSync } from '../../src/io/atomic.js';
import { REPO } from './helpers.js';

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'adasde-atomic-'));
  try {
    await f(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('writes strings, bytes and chunk lists; creates parents; replaces; leaves no temp', () =>
  withDir(async (dir) => {
    const p = join(dir, 'a', 'b', 'f.txt');
    await writeFileAtomic(p, 'héllo');
    assert.equal(await readFile(p, 'utf8'), 'héllo');
    await writeFileAtomic(p, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...(await readFile(p))], [1, 2, 3]);
    await writeFileAtomic(p, [Buffer.from('ab'), new Uint8Array(0), Buffer.from('cd')], { fsync: true });
    assert.equal(await readFile(p, 'utf8'), 'abcd');
    writeFileAtomicSync(join(dir, 's', 'g.txt'), 'sync');
    assert.equal(await readFile(join(dir, 's', 'g.txt'), 'utf8'), 'sync');
    assert.deepEqual(await readdir(join(dir, 'a', 'b')), ['f.txt']);
  }));

test('temp names live beside the target', () => {
  const t = tempPathFor(join('x', 'y.png'));
  assert.match(t, new RegExp(`^x[/\\\\]y\\.png\\.tmp-${process.pid}-[0-9a-f]{12}$`));
});

test('a failed rename removes the temp file and keeps the target', () =>
  withDir(async (dir) => {
    // The target is a non-empty directory, so rename() fails after the data was written.
    const target = join(dir, 'target');
    await mkdir(join(target, 'inside'), { recursive: true });
    await assert.rejects(writeFileAtomic(target, 'data'));
    assert.deepEqual(await readdir(dir), ['target']);
    assert.throws(() => writeFileAtomicSync(target, 'data'));
    assert.deepEqual(await readdir(dir), ['target']);
  }));

test('a writer killed mid-write leaves no file under the final name; stale temps are cleaned', () =>
  withDir(async (dir) => {
    const target = join(dir, 'big.bin');
    const mod = pathToFileURL(join(REPO, 'dist', 'src', 'io', 'atomic.js')).href;
    // 256 chunks of 1 MiB: slow enough to be caught half-written.
    const script = `import { writeFileAtomic } from ${JSON.stringify(mod)};
      const chunk = Buffer.alloc(1 << 20, 7);
      await writeFileAtomic(${JSON.stringify(target)}, Array(256).fill(chunk));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    let tmp: string | undefined;
    for (let i = 0; i < 500 && tmp === undefined; i++) {
      tmp = (await readdir(dir)).find((f) => f.includes('.tmp-'));
      if (tmp === undefined) await sleep(10);
    }
    child.kill('SIGKILL');
    await exited;
    if (tmp === undefined) {
      // The machine was too slow to observe the temp file: then the write must have completed.
      assert.ok(existsSync(target));
      return;
    }
    assert.ok(!existsSync(target) || (await readFile(target)).length === 256 << 20, 'no partial file under the final name');
    // Our own live temp files and unrelated files are kept; the dead writer's temp goes.
    const mine = tempPathFor(join(dir, 'mine.bin'));
    await writeFile(mine, 'x');
    await writeFile(join(dir, 'keep.tmp-notours'), 'x');
    const removed = await removeStaleTempFiles(dir);
    assert.ok(removed.some((p) => p.endsWith(tmp)) || !existsSync(join(dir, tmp)));
    const left = await readdir(dir);
    assert.ok(!left.includes(tmp));
    assert.ok(left.includes('keep.tmp-notours'));
    assert.ok(left.some((f) => join(dir, f) === mine));
  }));

test('removeStaleTempFiles on a missing folder returns nothing', async () => {
  assert.deepEqual(await removeStaleTempFiles(join(tmpdir(), 'adasde-definitely-missing')), []);
});
