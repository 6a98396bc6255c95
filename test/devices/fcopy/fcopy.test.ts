/**
 * File copy IC end to end inside one thread: FcopyHost ↔ loopback channel ↔ FcopyGuest (Linux hv_fcopy
 * rules) ↔ our daemon, answering synchronously in place of the device node, writing into a temporary
 * folder (the node + socket path is covered by test/fcopy-parity). Statuses are the HRESULTs of
 * include/uapi/linux/hyperv.h; file semantics those of reference/vmbus-core-ics.md §7.5.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FcopyGuest } from '../../../src/devices/fcopy/guest.ts';
import { FcopyHost, hostFcopyOffer } from '../../../src/devices/fcopy/host.ts';
import { FcopyDaemon, type FcopyDaemonOptions } from '../../../src/guest/daemons/fcopy/daemon.ts';
import { CREATE_PATH, DATA_FRAGMENT, OVER_WRITE } from '../../../src/protocol/ic/fcopy.ts';
import { HV_E_FAIL, HV_ERROR_ALREADY_EXISTS, HV_S_OK } from '../../../src/protocol/ic/icmsg.ts';
import { encodeFcopyInt, FCOPY_CURRENT_VERSION } from '../../../src/protocol/uapi/fcopy.ts';
import { loopback, ManualClock } from '../ic/loopback.ts';

const root = mkdtempSync(join(tmpdir(), 'hvis-fcopy-dev-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Our daemon wired straight to the driver: each message it gets is answered before toDaemon returns. */
function directDaemon(opts: FcopyDaemonOptions) {
  let guest: FcopyGuest | null = null;
  let daemon: FcopyDaemon | null = null;
  return {
    toDaemon(msg: Uint8Array): boolean {
      if (!guest || !daemon) return false;
      if (msg.length === 4) return true; // the kernel's version answer
      guest.onDaemonMessage(encodeFcopyInt(daemon.handle(msg)));
      return true;
    },
    start(g: FcopyGuest) {
      guest = g;
      daemon = new FcopyDaemon(opts);
      g.onDaemonMessage(encodeFcopyInt(FCOPY_CURRENT_VERSION));
    },
    stop() {
      daemon?.close();
      daemon = null;
      guest?.onDaemonRelease();
    },
  };
}

function setup(opts: { daemon?: boolean; allowedRoots?: string[] } = {}) {
  const clock = new ManualClock();
  const direct = directDaemon({ allowedRoots: opts.allowedRoots ?? [], log: () => {} });
  const sent: Uint8Array[] = [];
  const lb = loopback(
    (ch) => new FcopyHost(ch, { clock, offer: hostFcopyOffer('WS2022') }),
    (ch) =>
      new FcopyGuest(ch, {
        clock,
        toDaemon: (m) => {
          sent.push(m.slice());
          // Without our daemon the node is held by a silent test daemon.
          return opts.daemon === false ? true : direct.toDaemon(m);
        },
      }),
  );
  lb.host.start();
  lb.pump();
  if (opts.daemon !== false) direct.start(lb.guest);
  const d = opts.daemon === false ? null : direct;
  /** Runs one request and returns the guest's status. */
  const call = (send: (cb: (e: Error | null, s: number) => void) => void): number => {
    let got: number | Error | undefined;
    send((e, s) => {
      got = e ?? s;
    });
    lb.pump();
    if (got instanceof Error) throw got;
    assert.notEqual(got, undefined, 'no reply');
    return got as number;
  };
  const copy = (dir: string, name: string, data: Uint8Array, flags: number): number => {
    const s = call((cb) =>
      lb.host.startFileCopy({ fileName: name, pathName: dir, copyFlags: flags, fileSize: data.length }, cb),
    );
    if (s !== HV_S_OK) return s;
    for (let off = 0; off < data.length; off += DATA_FRAGMENT) {
      const n = Math.min(DATA_FRAGMENT, data.length - off);
      const w = call((cb) => lb.host.write(off, data.subarray(off, off + n), cb));
      if (w !== HV_S_OK) return w;
    }
    return call((cb) => lb.host.complete(cb));
  };
  return { lb, clock, d, call, copy, sent };
}

test('negotiates framework 3.0 and fcopy 1.1 as Linux hv_fcopy does', () => {
  const { lb } = setup();
  assert.equal(lb.host.status.frameworkVersion, '3.0');
  assert.equal(lb.host.status.messageVersion, '1.1');
  assert.equal(lb.hostCh.sent[0]?.payload[8 + 4], 0, 'NEGOTIATE first');
  assert.ok(lb.host.idle);
});

test('copies a file with a non-ASCII name byte for byte, mode 0744, in a created folder', () => {
  const { copy } = setup();
  const data = randomBytes(3 * DATA_FRAGMENT + 123);
  const dir = join(root, 'ünï', 'ç', 'deep');
  const name = 'Grüße – 日本語 🎉.bin';
  assert.equal(copy(dir, name, data, CREATE_PATH), HV_S_OK);
  const got = readFileSync(join(dir, name));
  assert.equal(
    createHash('sha256').update(got).digest('hex'),
    createHash('sha256').update(data).digest('hex'),
  );
  assert.equal(statSync(join(dir, name)).mode & 0o777, 0o744);
});

test('an existing target without OVER_WRITE gives HV_ERROR_ALREADY_EXISTS and stays untouched; with it, replaced', () => {
  const { copy } = setup();
  const dir = join(root, 'ow');
  assert.equal(copy(dir, 'f', Buffer.from('old'), CREATE_PATH), HV_S_OK);
  assert.equal(copy(dir, 'f', Buffer.from('new'), CREATE_PATH), HV_ERROR_ALREADY_EXISTS);
  assert.equal(readFileSync(join(dir, 'f'), 'utf8'), 'old');
  assert.equal(copy(dir, 'f', Buffer.from('newer'), CREATE_PATH | OVER_WRITE), HV_S_OK);
  assert.equal(readFileSync(join(dir, 'f'), 'utf8'), 'newer');
  assert.deepEqual(readdirSync(dir), ['f'], 'no temporaries left');
});

test('a missing folder without CREATE_PATH fails with HV_E_FAIL', () => {
  const { copy } = setup();
  assert.equal(copy(join(root, 'nope', 'x'), 'f', Buffer.from('x'), 0), HV_E_FAIL);
  assert.equal(existsSync(join(root, 'nope')), false);
});

test('CANCEL mid-copy leaves no file and no temporary behind', () => {
  const { call, lb } = setup();
  const dir = join(root, 'cancel');
  assert.equal(
    call((cb) =>
      lb.host.startFileCopy(
        { fileName: 'c.bin', pathName: dir, copyFlags: CREATE_PATH, fileSize: 10000 },
        cb,
      ),
    ),
    HV_S_OK,
  );
  assert.equal(
    call((cb) => lb.host.write(0, new Uint8Array(5000).fill(7), cb)),
    HV_S_OK,
  );
  assert.equal(
    call((cb) => lb.host.cancel(cb)),
    HV_S_OK,
  );
  assert.deepEqual(readdirSync(dir), []);
});

test('paths with .., relative folders and names with / are refused; allowed roots confine the target', () => {
  const { copy } = setup();
  assert.equal(copy(`${root}/a/../b`, 'f', Buffer.from('x'), CREATE_PATH), HV_E_FAIL);
  assert.equal(copy('relative/dir', 'f', Buffer.from('x'), CREATE_PATH), HV_E_FAIL);
  assert.equal(copy(root, 'a/b', Buffer.from('x'), CREATE_PATH), HV_E_FAIL);
  assert.equal(copy(root, '..', Buffer.from('x'), CREATE_PATH), HV_E_FAIL);
  const allowed = join(root, 'allowed');
  const other = join(root, 'other');
  const confined = setup({ allowedRoots: [root] });
  assert.equal(confined.copy(allowed, 'f', Buffer.from('x'), CREATE_PATH), HV_S_OK);
  const strict = setup({ allowedRoots: [allowed] });
  assert.equal(strict.copy(other, 'f', Buffer.from('x'), CREATE_PATH), HV_E_FAIL);
  assert.equal(existsSync(join(other, 'f')), false);
});

test('no daemon: requests fail with HV_E_FAIL at once (Linux: state below HVUTIL_READY)', () => {
  const { call, lb } = setup({ daemon: false });
  assert.equal(
    call((cb) => lb.host.startFileCopy({ fileName: 'f', pathName: root, copyFlags: 0, fileSize: 1 }, cb)),
    HV_E_FAIL,
  );
});

test('a daemon that never answers: the guest answers HV_E_FAIL after 30 s', () => {
  const { lb, clock, sent } = setup({ daemon: false });
  lb.guest.onDaemonMessage(Uint8Array.of(1, 0, 0, 0));
  assert.deepEqual([...sent[0]!], [1, 0, 0, 0], 'FCOPY_CURRENT_VERSION answers the registration');
  let got: number | undefined;
  lb.host.startFileCopy({ fileName: 'f', pathName: root, copyFlags: 0, fileSize: 1 }, (_e, s) => {
    got = s;
  });
  lb.pump();
  assert.equal(got, undefined);
  clock.advance(29_999, () => lb.pump());
  assert.equal(got, undefined);
  clock.advance(1, () => lb.pump());
  lb.pump();
  assert.equal(got, HV_E_FAIL);
});

test('the daemon going away mid-copy fails the waiting request and leaves no partial file', () => {
  const { lb, d, call } = setup();
  const dir = join(root, 'killed');
  assert.equal(
    call((cb) =>
      lb.host.startFileCopy({ fileName: 'k', pathName: dir, copyFlags: CREATE_PATH, fileSize: 9000 }, cb),
    ),
    HV_S_OK,
  );
  d?.stop();
  assert.equal(
    call((cb) => lb.host.write(0, new Uint8Array(100).fill(1), cb)),
    HV_E_FAIL,
  );
  assert.deepEqual(readdirSync(dir), []);
});

test('fragments that arrive out of order land at their offsets (gathered writes are flushed at a gap)', () => {
  const { lb, call } = setup();
  const dir = join(root, 'unordered');
  const data = randomBytes(DATA_FRAGMENT * 5 + 123);
  assert.equal(
    call((cb) =>
      lb.host.startFileCopy(
        { fileName: 'u', pathName: dir, copyFlags: CREATE_PATH, fileSize: data.length },
        cb,
      ),
    ),
    HV_S_OK,
  );
  for (const i of [0, 1, 3, 2, 5, 4]) {
    const off = i * DATA_FRAGMENT;
    const n = Math.min(DATA_FRAGMENT, data.length - off);
    const s = call((cb) => lb.host.write(off, data.subarray(off, off + n), cb));
    assert.equal(s, HV_S_OK);
  }
  assert.equal(
    call((cb) => lb.host.complete(cb)),
    HV_S_OK,
  );
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  assert.equal(sha(readFileSync(join(dir, 'u'))), sha(data));
});

test('a request while one waits is refused (one transaction at a time); the waiting fragment completes', () => {
  const { lb, call } = setup();
  const dir = join(root, 'busy');
  const first = new Uint8Array(DATA_FRAGMENT).fill(1);
  assert.equal(
    call((cb) =>
      lb.host.startFileCopy(
        { fileName: 'b', pathName: dir, copyFlags: CREATE_PATH, fileSize: DATA_FRAGMENT },
        cb,
      ),
    ),
    HV_S_OK,
  );
  let status: number | undefined;
  lb.host.write(0, first, (_e, s) => {
    status = s;
  });
  assert.throws(() => lb.host.write(DATA_FRAGMENT, new Uint8Array(10).fill(2), () => {}), {
    code: 'HV_ERR_INVALID_STATE',
  });
  assert.throws(() => lb.host.complete(() => {}), { code: 'HV_ERR_INVALID_STATE' });
  lb.pump();
  assert.equal(status, HV_S_OK);
  assert.equal(
    call((cb) => lb.host.complete(cb)),
    HV_S_OK,
  );
  assert.deepEqual(readFileSync(join(dir, 'b')), Buffer.from(first));
});
