/**
 * Parity: one scripted Copy-VMFile conversation through FcopyHost → IC → FcopyGuest driver →
 * /dev/vmbus/hv_fcopy → socket bridge, against Debian's real hv_fcopy_daemon (via native/hvshim) and against
 * ours (standalone), each in the same sandbox (scripts/sandbox-run.sh; the guest's /var/lib is a folder of
 * the test). What the host sees and the files written must match, except where Linux is known wrong
 * (reference/real-peers.md §3.1): CREATE_PATH without a trailing `/` (Linux forgets the last folder) and
 * CANCEL of an overwrite (Linux unlinks the old file too; ours keeps it). Those are asserted as differences.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import { spawnSandboxedDaemon } from '../../src/bridges/uapi/sandbox.ts';
import { FcopyGuest } from '../../src/devices/fcopy/guest.ts';
import { FcopyHost, hostFcopyOffer } from '../../src/devices/fcopy/host.ts';
import { CREATE_PATH, DATA_FRAGMENT, OVER_WRITE } from '../../src/protocol/ic/fcopy.ts';
import { HV_E_FAIL, HV_ERROR_ALREADY_EXISTS, HV_S_OK } from '../../src/protocol/ic/icmsg.ts';
import { systemClock } from '../../src/vmbus/channel-io.ts';
import { watchDaemon } from '../fixtures/sandboxed-daemon.ts';
import { until } from '../fixtures/until.ts';
import { requirePeer } from '../peers.ts';
import { uapiIcStack } from './ic-stack.ts';

const scratch = mkdtempSync(`${tmpdir()}/fcopy-parity-`);
after(() => rmSync(scratch, { recursive: true, force: true }));
const DATA = randomBytes(100_000);
const NAME = 'Grüße – 日本語 ✓.bin';
const hex = (s: number) => `0x${(s >>> 0).toString(16)}`;

interface Outcome {
  steps: Record<string, string>;
  file: { sha: string; mode: number } | null;
  afterCancel: string | null;
  lastFolder: boolean;
}

async function runAgainst(kind: 'real' | 'ours'): Promise<Outcome> {
  const dir = `${scratch}/${kind}`;
  const socket = `${scratch}/${kind}.sock`;
  const stack = await uapiIcStack({
    socket,
    path: '/dev/vmbus/hv_fcopy',
    host: (ch) => new FcopyHost(ch, { clock: systemClock, offer: hostFcopyOffer('WS2022') }),
    guest: (ch, toDaemon) => new FcopyGuest(ch, { clock: systemClock, toDaemon }),
  });
  const child = spawnSandboxedDaemon({ kind, service: 'fcopy', socket, state: `${dir}/state` });
  const daemon = watchDaemon(child);
  const h = stack.host;
  const call = (send: (cb: (e: Error | null, s: number) => void) => void) =>
    new Promise<string>((res, rej) => send((e, s) => (e ? rej(e) : res(hex(s)))));
  const start = (path: string, name: string, flags: number, size: number) =>
    call((cb) => h.startFileCopy({ fileName: name, pathName: path, copyFlags: flags, fileSize: size }, cb));
  const write = (off: number, data: Uint8Array) => call((cb) => h.write(off, data, cb));
  try {
    await until(() => stack.guest.daemonRegistered && h.idle, 'the daemon to register');
    const steps: Record<string, string> = {};
    steps['start, CREATE_PATH, no trailing /'] = await start('/var/lib/fc/a/b', 'x', CREATE_PATH, 1);
    steps['start, CREATE_PATH, trailing /'] = await start(
      '/var/lib/fc/sub/dir/',
      NAME,
      CREATE_PATH,
      DATA.length,
    );
    let w = HV_S_OK.toString();
    for (let off = 0; off < DATA.length; off += DATA_FRAGMENT) {
      const r = await write(off, DATA.subarray(off, off + DATA_FRAGMENT));
      if (r !== '0x0') w = r;
    }
    steps.writes = hex(Number(w));
    steps.complete = await call((cb) => h.complete(cb));
    const f = `${dir}/state/fc/sub/dir/${NAME}`;
    const file = existsSync(f)
      ? { sha: createHash('sha256').update(readFileSync(f)).digest('hex'), mode: statSync(f).mode & 0o777 }
      : null;
    steps['start again, no OVER_WRITE'] = await start('/var/lib/fc/sub/dir/', NAME, CREATE_PATH, 5);
    steps['start again, OVER_WRITE'] = await start('/var/lib/fc/sub/dir/', NAME, CREATE_PATH | OVER_WRITE, 5);
    steps['write during overwrite'] = await write(0, Buffer.from('12345'));
    steps.cancel = await call((cb) => h.cancel(cb));
    const afterCancel = existsSync(f) ? createHash('sha256').update(readFileSync(f)).digest('hex') : null;
    steps['start, missing folder, no CREATE_PATH'] = await start('/var/lib/fc/nope/x', 'f', 0, 5);
    steps['write with no file open'] = await write(0, Buffer.from('z'));
    return { steps, file, afterCancel, lastFolder: existsSync(`${dir}/state/fc/a/b`) };
  } finally {
    await stack.close();
    await daemon.reap();
  }
}

test("Debian's hv_fcopy_daemon and ours: same statuses and files, except where Linux is wrong", async () => {
  requirePeer('hv_fcopy_daemon', 'hyperv-daemons');
  requirePeer('unshare', 'util-linux');
  requirePeer('gcc', 'gcc');
  const real = await runAgainst('real');
  const ours = await runAgainst('ours');
  if (process.env.FCOPY_PARITY_DUMP) console.log(JSON.stringify({ real, ours }, null, 1));
  const sha = createHash('sha256').update(DATA).digest('hex');

  // The reference run itself (real-peers.md §3.1).
  assert.equal(real.steps['start, CREATE_PATH, trailing /'], hex(HV_S_OK));
  assert.equal(real.steps['start again, no OVER_WRITE'], hex(HV_ERROR_ALREADY_EXISTS));
  assert.equal(real.steps['start, missing folder, no CREATE_PATH'], hex(HV_E_FAIL));
  assert.deepEqual(real.file, { sha, mode: 0o744 });

  // Known Linux faults, and ours.
  assert.equal(real.steps['start, CREATE_PATH, no trailing /'], hex(HV_E_FAIL));
  assert.equal(real.lastFolder, false);
  assert.equal(ours.steps['start, CREATE_PATH, no trailing /'], hex(HV_S_OK));
  assert.equal(ours.lastFolder, true);
  assert.equal(real.afterCancel, null, 'Linux: CANCEL of an overwrite unlinks the old file too');
  assert.equal(ours.afterCancel, sha, 'ours: CANCEL keeps the old file');

  const same = (o: Outcome) => {
    const { 'start, CREATE_PATH, no trailing /': _a, ...rest } = o.steps;
    return { steps: rest, file: o.file };
  };
  assert.deepEqual(same(ours), same(real));
});
