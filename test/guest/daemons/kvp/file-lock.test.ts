/**
 * FileLock's synchronous mode (blocking FIFO I/O with the hvlock helper, used by the standalone daemon)
 * gives the same exclusion as the asynchronous one: while one holder runs, the other's critical section
 * waits for the fcntl lock, whichever mode each uses, and a closed lock frees the file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { FileLock } from '../../../../src/guest/daemons/kvp/file-lock.ts';

test('sync and async holders of the pool-file lock exclude each other', async () => {
  const dir = mkdtempSync(`${tmpdir()}/hvlock-test-`);
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
    // And the other way round, the sync holder waiting (blocking) for the async one is not testable in one
    // thread; a second sync round after the async one shows the lock was released by both.
    for (let i = 0; i < 100; i++) await a.with(path, async () => {});
    a.close();
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
