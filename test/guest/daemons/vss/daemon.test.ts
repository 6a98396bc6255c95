/**
 * Our hv_vss_daemon's policy rules with an injected FIFREEZE/FITHAW (nothing is frozen): exactly the named
 * mount points in order, `/` refused unless allowed, a failed freeze thaws what it froze (HV_E_FAIL, as
 * Linux), EBUSY/EINVAL tolerated (as Linux), a freeze that no THAW follows ends by itself, a closed device
 * thaws. Statuses from include/uapi/linux/hyperv.h; Linux behaviour from reference/vmbus-core-ics.md §7.4.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { UapiFile } from '../../../../src/bridges/uapi/file.ts';
import { EBUSY, ErrnoError } from '../../../../src/guest/daemons/libc.ts';
import { serveVss, VssDaemon } from '../../../../src/guest/daemons/vss/daemon.ts';
import { isHvError } from '../../../../src/protocol/errors.ts';
import { HV_E_FAIL, HV_S_OK } from '../../../../src/protocol/ic/icmsg.ts';
import {
  VSS_OP_FREEZE,
  VSS_OP_GET_DM_INFO,
  VSS_OP_HOT_BACKUP,
  VSS_OP_THAW,
} from '../../../../src/protocol/ic/vss.ts';

const root = mkdtempSync(join(tmpdir(), 'hvis-vss-'));
after(() => rmSync(root, { recursive: true, force: true }));
const a = join(root, 'a');
const b = join(root, 'b');
mkdirSync(a);
mkdirSync(b);

function daemon(fail: Record<string, number> = {}, freezeTimeoutMs = 60_000) {
  const calls: string[] = [];
  const d = new VssDaemon({
    mountPoints: [a, b],
    freezeTimeoutMs,
    log: () => {},
    ioctl: (_fd, op, m) => {
      calls.push(`${op} ${m}`);
      const e = fail[`${op} ${m}`];
      if (e) throw new ErrnoError(op, e);
    },
  });
  return { d, calls };
}

test('FREEZE freezes exactly the named mount points in order; THAW thaws them in reverse', () => {
  const { d, calls } = daemon();
  assert.equal(d.handle(VSS_OP_FREEZE), HV_S_OK);
  assert.deepEqual(d.frozen, [a, b]);
  assert.equal(d.handle(VSS_OP_THAW), HV_S_OK);
  assert.deepEqual(calls, [`freeze ${a}`, `freeze ${b}`, `thaw ${b}`, `thaw ${a}`]);
  assert.deepEqual(d.frozen, []);
});

test('a failed freeze thaws what was frozen and answers HV_E_FAIL; EBUSY counts as frozen', () => {
  const { d, calls } = daemon({ [`freeze ${b}`]: 95 });
  assert.equal(d.handle(VSS_OP_FREEZE), HV_E_FAIL);
  assert.deepEqual(calls, [`freeze ${a}`, `freeze ${b}`, `thaw ${a}`]);
  assert.deepEqual(d.frozen, []);
  const busy = daemon({ [`freeze ${a}`]: EBUSY });
  assert.equal(busy.d.handle(VSS_OP_FREEZE), HV_S_OK);
  busy.d.thaw();
});

test('HOT_BACKUP and other operations answer 0 without touching anything', () => {
  const { d, calls } = daemon();
  assert.equal(d.handle(VSS_OP_HOT_BACKUP), HV_S_OK);
  assert.equal(d.handle(VSS_OP_GET_DM_INFO), HV_S_OK);
  assert.deepEqual(calls, []);
});

test('/ is refused unless allowed; relative paths are refused', () => {
  assert.throws(
    () => new VssDaemon({ mountPoints: ['/'], ioctl: () => {} }),
    (e) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT') && /refusing to freeze '\/'/.test(e.message),
  );
  assert.throws(() => new VssDaemon({ mountPoints: ['/tmp/../'], ioctl: () => {} }), /refusing/);
  assert.throws(() => new VssDaemon({ mountPoints: ['data'], ioctl: () => {} }), /absolute/);
  assert.doesNotThrow(() => new VssDaemon({ mountPoints: ['/'], allowRoot: true, ioctl: () => {} }));
});

test('a freeze with no THAW ends by itself after the timeout', async () => {
  const { d, calls } = daemon({}, 50);
  assert.equal(d.handle(VSS_OP_FREEZE), HV_S_OK);
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(d.frozen, []);
  assert.deepEqual(calls.slice(2), [`thaw ${b}`, `thaw ${a}`]);
});

test('the device closing while frozen thaws (the daemon never leaves a freeze behind)', async () => {
  const { d } = daemon();
  const inbox: Uint8Array[] = [
    Uint8Array.of(129, 0, 0, 0),
    new Uint8Array(12).fill(0).map((_, i) => (i === 0 ? VSS_OP_FREEZE : 0)),
  ];
  const written: Uint8Array[] = [];
  let closedRej: ((e: Error) => void) | null = null;
  const file: UapiFile = {
    closed: false,
    read: () => {
      const m = inbox.shift();
      return m ? Promise.resolve(m) : new Promise((_r, rej) => (closedRej = rej));
    },
    write: (m) => void written.push(m.slice()),
    close: () => {},
  };
  const served = serveVss(file, d);
  await new Promise((r) => setImmediate(r));
  assert.equal(written[0]![0], 129, 'REGISTER1 first');
  assert.equal(written.length, 2);
  assert.deepEqual(d.frozen, [a, b]);
  (closedRej as ((e: Error) => void) | null)?.(new Error('EBADF'));
  await served;
  assert.deepEqual(d.frozen, []);
});
