/**
 * The fcntl lock against the system's C headers and a C process: `struct flock` layout and the F_OFD_* /
 * F_*LCK constants as gcc sees them in /usr/include, and exclusion against a classic F_SETLKW write lock
 * (what hv_kvp_daemon's kvp_acquire_lock takes) held by another process.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import {
  F_OFD_SETLK,
  F_OFD_SETLKW,
  F_UNLCK,
  F_WRLCK,
  FLOCK,
  fcntlLock,
} from '../../../../src/guest/daemons/kvp/fcntl-lock.ts';
import { requirePeer } from '../../../peers.ts';

const dir = mkdtempSync(`${tmpdir()}/fcntl-lock-test-`);
after(() => rmSync(dir, { recursive: true, force: true }));

function compile(name: string, src: string): string {
  const gcc = requirePeer('gcc', 'gcc');
  writeFileSync(`${dir}/${name}.c`, src);
  execFileSync(gcc, ['-O0', '-o', `${dir}/${name}`, `${dir}/${name}.c`]);
  return `${dir}/${name}`;
}

test('struct flock layout and fcntl constants match the system headers', () => {
  const exe = compile(
    'layout',
    `#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
int main(void) {
  printf("%zu %zu %zu %zu %zu %zu %d %d %d %d %d\\n", sizeof(struct flock), offsetof(struct flock, l_type),
    offsetof(struct flock, l_whence), offsetof(struct flock, l_start), offsetof(struct flock, l_len),
    offsetof(struct flock, l_pid), F_OFD_SETLK, F_OFD_SETLKW, F_WRLCK, F_UNLCK, SEEK_SET);
  return 0;
}
`,
  );
  const got = execFileSync(exe, { encoding: 'utf8' }).trim().split(' ').map(Number);
  assert.deepEqual(got, [
    FLOCK.size,
    FLOCK.l_type,
    FLOCK.l_whence,
    FLOCK.l_start,
    FLOCK.l_len,
    FLOCK.l_pid,
    F_OFD_SETLK,
    F_OFD_SETLKW,
    F_WRLCK,
    F_UNLCK,
    0,
  ]);
});

test('a classic F_SETLKW write lock of another process excludes ours, and ours excludes it', async () => {
  // Holds the lock kvp_acquire_lock takes until its stdin closes; "L" once locked.
  const exe = compile(
    'holder',
    `#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int fd = open(argv[1], O_RDWR);
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
  if (fd < 0 || fcntl(fd, F_SETLKW, &fl) < 0) return 1;
  write(1, "L", 1);
  char c;
  while (read(0, &c, 1) > 0) {}
  return 0;
}
`,
  );
  const path = `${dir}/.kvp_pool_0`;
  writeFileSync(path, '');
  const fd = openSync(path, 'r+');
  try {
    const locked = (p: ReturnType<typeof spawn>) =>
      new Promise<void>((res, rej) => {
        p.stdout!.once('data', () => res());
        p.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
      });
    const c1 = spawn(exe, [path], { stdio: ['pipe', 'pipe', 'ignore'] });
    await locked(c1);
    assert.equal(fcntlLock(fd, 'try-lock'), false, 'held by the C process');
    let granted = false;
    const waiting = fcntlLock.async(fd).then(() => {
      granted = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(granted, false, 'the async wait must not be granted while the C process holds the lock');
    c1.stdin!.end();
    await waiting;
    assert.equal(granted, true);
    // Now we hold it: a second C process waits until we unlock.
    const c2 = spawn(exe, [path], { stdio: ['pipe', 'pipe', 'ignore'] });
    let c2Locked = false;
    const c2Done = locked(c2).then(() => {
      c2Locked = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(c2Locked, false, 'the C process must wait for our lock');
    fcntlLock(fd, 'unlock');
    await c2Done;
    assert.equal(fcntlLock(fd, 'try-lock'), false, 'held by the second C process');
    c2.stdin!.end();
    await new Promise((r) => c2.once('exit', r));
    assert.equal(fcntlLock(fd, 'try-lock'), true);
    fcntlLock(fd, 'unlock');
  } finally {
    closeSync(fd);
  }
});
