/**
 * Faults mid-copy, through FcopyHost → IC → FcopyGuest → /dev/vmbus/hv_fcopy → bridge → sandboxed daemon,
 * against Debian's hv_fcopy_daemon and ours:
 * - a full disk (a 1 MiB tmpfs mounted inside the sandbox only, never a filesystem of the machine): ours
 *   answers HV_ERROR_DISK_FULL, Debian's 6.1 daemon HV_E_FAIL; after the host's CANCEL neither leaves a file;
 * - the daemon killed (SIGKILL) mid-copy: the host gets HV_E_FAIL (the driver fails the request when the
 *   node closes). (What each leaves on disk is not observable here: the sandbox's tmpfs dies with the daemon;
 *   ours writes an unnamed O_TMPFILE, covered in test/devices/fcopy.)
 * Files inside the sandbox are read through /proc/<daemon pid>/root (the prelude records the pid).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import { spawnSandboxedDaemon } from '../../src/bridges/uapi/sandbox.ts';
import { FcopyGuest } from '../../src/devices/fcopy/guest.ts';
import { FcopyHost, hostFcopyOffer } from '../../src/devices/fcopy/host.ts';
import { CREATE_PATH, DATA_FRAGMENT } from '../../src/protocol/ic/fcopy.ts';
import { HV_E_FAIL, HV_ERROR_DISK_FULL, HV_S_OK } from '../../src/protocol/ic/icmsg.ts';
import { systemClock } from '../../src/vmbus/channel-io.ts';
import { watchDaemon } from '../fixtures/sandboxed-daemon.ts';
import { until } from '../fixtures/until.ts';
import { requirePeer } from '../peers.ts';
import { uapiIcStack } from './ic-stack.ts';

const scratch = mkdtempSync(`${tmpdir()}/fcopy-faults-`);
after(() => rmSync(scratch, { recursive: true, force: true }));
const CHUNK = new Uint8Array(DATA_FRAGMENT).fill(0x5a);

async function session(kind: 'real' | 'ours', tag: string) {
  const dir = `${scratch}/${kind}-${tag}`;
  const socket = `${dir}.sock`;
  const stack = await uapiIcStack({
    socket,
    path: '/dev/vmbus/hv_fcopy',
    host: (ch) => new FcopyHost(ch, { clock: systemClock, offer: hostFcopyOffer('WS2022') }),
    guest: (ch, toDaemon) => new FcopyGuest(ch, { clock: systemClock, toDaemon }),
  });
  const child = spawnSandboxedDaemon({
    kind,
    service: 'fcopy',
    socket,
    state: `${dir}/state`,
    prelude:
      'mkdir -p /var/lib/small && mount -t tmpfs -o size=1m fcopyfull /var/lib/small && echo $$ > /var/lib/.pid',
  });
  const daemon = watchDaemon(child);
  const h = stack.host;
  const call = (send: (cb: (e: Error | null, s: number) => void) => void) =>
    new Promise<number>((res, rej) => send((e, s) => (e ? rej(e) : res(s))));
  await until(() => stack.guest.daemonRegistered && h.idle, 'the daemon to register');
  const pid = Number(readFileSync(`${dir}/state/.pid`, 'utf8'));
  return {
    h,
    pid,
    inside: (p: string) => `/proc/${pid}/root${p}`,
    start: (path: string, name: string, size: number) =>
      call((cb) =>
        h.startFileCopy({ fileName: name, pathName: path, copyFlags: CREATE_PATH, fileSize: size }, cb),
      ),
    write: (off: number) => call((cb) => h.write(off, CHUNK, cb)),
    cancel: () => call((cb) => h.cancel(cb)),
    close: async () => {
      await stack.close();
      await daemon.reap();
    },
  };
}

async function diskFull(kind: 'real' | 'ours') {
  const s = await session(kind, 'full');
  try {
    assert.equal(await s.start('/var/lib/small/', 'big.bin', 2 << 20), HV_S_OK);
    let status = HV_S_OK;
    let off = 0;
    for (; off < 2 << 20 && status === HV_S_OK; off += DATA_FRAGMENT) status = await s.write(off);
    const cancel = await s.cancel();
    return { status, cancel, left: readdirSync(s.inside('/var/lib/small')) };
  } finally {
    await s.close();
  }
}

async function killed(kind: 'real' | 'ours') {
  const s = await session(kind, 'killed');
  try {
    assert.equal(await s.start('/var/lib/small/', 'k.bin', 1 << 20), HV_S_OK);
    for (let off = 0; off < 10 * DATA_FRAGMENT; off += DATA_FRAGMENT)
      assert.equal(await s.write(off), HV_S_OK);
    const root = s.inside('/var/lib/small');
    process.kill(s.pid, 'SIGKILL');
    const after = await s.write(10 * DATA_FRAGMENT).catch((e: Error) => e);
    return { after, root };
  } finally {
    await s.close();
  }
}

test('a full disk mid-copy: the host gets a failure from both daemons, nothing is left after CANCEL', async () => {
  requirePeer('hv_fcopy_daemon', 'hyperv-daemons');
  requirePeer('unshare', 'util-linux');
  const real = await diskFull('real');
  const ours = await diskFull('ours');
  // Debian's 6.1 daemon answers ENOSPC with HV_E_FAIL (its binary has no disk-full path); later Linux and
  // ours answer HV_ERROR_DISK_FULL, which Copy-VMFile reports as "There is not enough space on the disk."
  assert.equal(real.status, HV_E_FAIL);
  assert.equal(ours.status, HV_ERROR_DISK_FULL);
  assert.deepEqual({ ...ours, status: 0 }, { ...real, status: 0 });
  assert.deepEqual(ours.left, []);
});

test('the daemon killed mid-copy: the host gets HV_E_FAIL at once', async () => {
  requirePeer('hv_fcopy_daemon', 'hyperv-daemons');
  for (const kind of ['real', 'ours'] as const) {
    const r = await killed(kind);
    assert.equal(r.after, HV_E_FAIL, kind);
    assert.equal(existsSync(r.root), false, 'the sandbox (and its tmpfs) went with the daemon');
  }
});
