/**
 * FileLock: two FileLocks in one process exclude each other like two processes would (open-file-description
 * locks), whichever waits synchronously or asynchronously, and a closed FileLock frees the file.
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { fcntlLock } from '../../../../src/guest/daemons/kvp/fcntl-lock.ts';
import { FileLock } from '../../../../src/guest/daemons/kvp/file-lock.ts';

test('sync and async holders of the pool-file lock exclude each other', async () => {
  const dir = mkdtempSync(`${tmpdir()}/file-lock-test-`);
  const path = `${dir}/.kvp_pool_0`;
  writeFileSync(path, '');
  const a = new FileLock({ sync: true });
  const b = new FileLock();
  const order: string[] = [];
  try {
    let bDone: Promise<void> = Promise.resolve();
    await a.with(path, async () => {
      order.push('a in');
      bDone = b.with(path, async () => {
        order.push('b in');
      });
      await new Promise((r) => setTimeout(r, 100));
      order.push('a out');
    });
    await bDone;
    assert.deepEqual(order, ['a in', 'a out', 'b in']);
    for (let i = 0; i < 100; i++) await a.with(path, async () => {});
    // A holder that closes mid-section frees the file for the other.
    let release: () => void = () => {};
    const held = a.with(path, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setImmediate(r));
    const fd = openSync(path, 'r+');
    assert.equal(fcntlLock(fd, 'try-lock'), false, 'a holds it');
    a.close();
    assert.equal(fcntlLock(fd, 'try-lock'), true, 'closing a released it');
    fcntlLock(fd, 'unlock');
    closeSync(fd);
    release();
    await held;
    await b.with(path, async () => {
      order.push('b again');
    });
    assert.equal(order.at(-1), 'b again');
  } finally {
    a.close();
    b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing pool file is an HV_ERR_IO rejection naming it', async () => {
  const l = new FileLock();
  await assert.rejects(
    l.with('/nonexistent/.kvp_pool_9', async () => 1),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'HV_ERR_IO');
      assert.match(e.message, /\.kvp_pool_9/);
      return true;
    },
  );
  l.close();
});
