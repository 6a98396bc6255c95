/**
 * A backup freeze that really freezes (opt-in: HVIS_TEST_REAL_FREEZE=1): ext4 on the otherwise unused
 * /dev/zram0 (disksize 0; set to 64M, mkfs.ext4, reset afterwards), mounted only inside the daemon's
 * sandbox (`unshare -m`), frozen through VssHost → IC → VssGuest → /dev/vmbus/hv_vss → bridge by Debian's
 * hv_vss_daemon (real-peers.md §3.2: it skips loop devices, hence zram) and by ours (policy naming exactly
 * that mount point). A writer inside the sandbox (`dd conv=fsync`) stays blocked while frozen and
 * completes after THAW.
 *
 * Safety: the real daemon walks a fake mount table holding only that zram mount (HVSHIM_MOUNTS) and, as a
 * second guard, its /proc/self/mounts is that table too (bind-mounted inside the sandbox); ours names only
 * that mount. Whatever fails, the test thaws (host THAW, then `fsfreeze -u` inside the sandbox) before it
 * kills the sandbox, and resets zram0. The machine's own filesystems are never named.
 *
 * Without the env var the same scenario runs on the fake-freeze path (tmpfs mount, HVSHIM_FAKE_FREEZE /
 * --fake-freeze): same host answers and ioctl targets, but nothing blocks, so the writer assertion is the
 * opt-in part — the test name says so.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import { spawnSandboxedDaemon } from '../../src/bridges/uapi/sandbox.ts';
import { VssGuest } from '../../src/devices/vss/guest.ts';
import { hostVssOffer, VssHost } from '../../src/devices/vss/host.ts';
import { HV_S_OK } from '../../src/protocol/ic/icmsg.ts';
import { VSS_OP_FREEZE, VSS_OP_THAW } from '../../src/protocol/ic/vss.ts';
import { systemClock } from '../../src/vmbus/channel-io.ts';
import { uapiIcStack } from '../fcopy-parity/ic-stack.ts';
import { watchDaemon } from '../fixtures/sandboxed-daemon.ts';
import { until } from '../fixtures/until.ts';
import { requirePeer } from '../peers.ts';
import { vssRegistered } from './fake-freeze-daemon.ts';

const REAL = process.env.HVIS_TEST_REAL_FREEZE === '1';
const ZRAM = '/sys/block/zram0';
const MNT = '/var/lib/vssreal';
const scratch = mkdtempSync(`${tmpdir()}/vss-real-`);
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Pids in the sandbox process tree under `pid` (unshare → its forked child → ...). */
function descendants(pid: number): number[] {
  let kids: number[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

async function freezeWithWriter(kind: 'real' | 'ours') {
  const dir = `${scratch}/${kind}`;
  const state = `${dir}/state`;
  const socket = `${scratch}/${kind}.sock`;
  mkdirSync(state, { recursive: true });
  writeFileSync(`${state}/fake-mounts`, `/dev/zram0 ${MNT} ext4 rw,relatime 0 0\n`);
  const stack = await uapiIcStack({
    socket,
    path: '/dev/vmbus/hv_vss',
    host: (ch) => new VssHost(ch, { clock: systemClock, offer: hostVssOffer('WS2022') }),
    guest: (ch, toDaemon) => new VssGuest(ch, { clock: systemClock, toDaemon }),
  });
  const mount = REAL ? `mount -t ext4 /dev/zram0 ${MNT}` : `mount -t tmpfs -o size=1m vssreal ${MNT}`;
  // The writer waits for /var/lib/go, then writes and syncs into the mount; its exit code lands in
  // /var/lib/written (the state folder, on the machine's unfrozen fs).
  const writer = `(while [ ! -e /var/lib/go ]; do sleep 0.05; done; dd if=/dev/zero of=${MNT}/w bs=4k count=16 conv=fsync 2>/dev/null; echo $? > /var/lib/written) &`;
  const child = spawnSandboxedDaemon({
    kind,
    service: 'vss',
    socket,
    state,
    stderr: 'pipe',
    prelude: [
      `mkdir -p ${MNT} && ${mount} || exit 1`,
      ...(kind === 'real' ? ['mount --bind /var/lib/fake-mounts /proc/self/mounts || exit 1'] : []),
      writer,
    ].join('\n'),
    env: { HVSHIM_MOUNTS: '/var/lib/fake-mounts', ...(REAL ? {} : { HVSHIM_FAKE_FREEZE: '1' }) },
    args: ['--freeze', MNT, ...(REAL ? [] : ['--fake-freeze'])],
  });
  const daemon = watchDaemon(child);
  try {
    await vssRegistered(stack, `${kind} daemon to register:\n${daemon.log}`);
    const freeze = await stack.host.request(VSS_OP_FREEZE);
    writeFileSync(`${state}/go`, '');
    // Long enough for a 64 KiB write to land were the fs not frozen; the writer is polled every 50 ms.
    await new Promise((r) => setTimeout(r, 1500));
    const writtenWhileFrozen = existsSync(`${state}/written`);
    const thaw = await stack.host.request(VSS_OP_THAW);
    await until(() => existsSync(`${state}/written`), 'the writer to finish after THAW');
    const ioctls = [...daemon.log.matchAll(/(?:FAKE )?(FIFREEZE|FITHAW) (\S+)(?: -> (-?\d+))?/g)].map(
      (m) => `${m[1]} ${m[2]}`,
    );
    return {
      freeze,
      thaw,
      writtenWhileFrozen,
      writerExit: readFileSync(`${state}/written`, 'utf8').trim(),
      ioctls,
      log: daemon.log,
    };
  } finally {
    // Thaw first: a frozen fs must not outlive its namespace, and a writer blocked on it cannot be killed.
    if (stack.guest.daemonRegistered) await stack.host.request(VSS_OP_THAW).catch(() => {});
    if (REAL) {
      const inside = descendants(child.pid!).at(-1);
      if (inside) {
        try {
          execFileSync('nsenter', ['-t', String(inside), '-m', 'fsfreeze', '-u', MNT], { stdio: 'ignore' });
        } catch {
          // not frozen (EINVAL): the normal case
        }
      }
    }
    await stack.close();
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    await daemon.exited;
  }
}

function zramReset(): void {
  for (let i = 0; i < 50; i++) {
    try {
      writeFileSync(`${ZRAM}/reset`, '1');
      return;
    } catch {
      execFileSync('sleep', ['0.1']);
    }
  }
  throw new Error(`could not reset ${ZRAM} (still busy); run: echo 1 > ${ZRAM}/reset`);
}

test(
  REAL
    ? 'VSS real freeze on ext4/zram0: Debian hv_vss_daemon and ours block a writer until THAW'
    : 'VSS freeze with a writer, fake-freeze path (real freeze opt-in: HVIS_TEST_REAL_FREEZE=1)',
  async () => {
    requirePeer('hv_vss_daemon', 'hyperv-daemons');
    requirePeer('unshare', 'util-linux');
    requirePeer('gcc', 'gcc');
    if (REAL) {
      requirePeer('mkfs.ext4', 'e2fsprogs');
      requirePeer('fsfreeze', 'util-linux');
      assert.ok(existsSync('/dev/zram0'), 'HVIS_TEST_REAL_FREEZE=1 needs /dev/zram0 (modprobe zram)');
      assert.equal(
        readFileSync(`${ZRAM}/disksize`, 'utf8').trim(),
        '0',
        'HVIS_TEST_REAL_FREEZE=1 needs an unused /dev/zram0 (disksize 0); it is in use, so it is left alone',
      );
      writeFileSync(`${ZRAM}/disksize`, '64M');
    }
    try {
      if (REAL) execFileSync('mkfs.ext4', ['-q', '-F', '/dev/zram0'], { stdio: 'ignore' });
      for (const kind of ['real', 'ours'] as const) {
        const r = await freezeWithWriter(kind);
        if (process.env.VSS_REAL_DUMP) console.log(kind, JSON.stringify(r, null, 1));
        assert.equal(r.freeze.status, HV_S_OK, `${kind}: FREEZE\n${r.log}`);
        assert.equal(r.thaw.status, HV_S_OK, `${kind}: THAW\n${r.log}`);
        assert.equal(r.writerExit, '0', `${kind}: the writer completed after THAW`);
        if (kind === 'real') assert.deepEqual(r.ioctls, [`FIFREEZE ${MNT}`, `FITHAW ${MNT}`]);
        // Really frozen: the writer waited for THAW. Fake: nothing was frozen, the write went through.
        assert.equal(r.writtenWhileFrozen, !REAL, `${kind}: written while (fake-)frozen`);
      }
    } finally {
      if (REAL) zramReset();
    }
  },
);
