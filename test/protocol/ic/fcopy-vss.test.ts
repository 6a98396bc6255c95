/**
 * File copy and VSS codecs (IC bodies and their /dev/vmbus uapi forms):
 * - layouts against the real header: sizeof/offsetof printed by gcc from Debian's
 *   /usr/include/linux/hyperv.h (package linux-libc-dev), the header hv_fcopy_daemon and hv_vss_daemon are
 *   built with;
 * - golden bytes at the offsets of reference/real-peers.md §3.1 (what Debian's daemon was fed and accepted:
 *   names @36/@556, flags @1076, size @1080; WRITE offset @40 after the hidden pad, size @48, data @52);
 * - round trips and totality (any byte string → a value or a ProtocolError) with fast-check.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.ts';
import {
  CANCEL_FCOPY,
  CREATE_PATH,
  DATA_FRAGMENT,
  decodeDoFcopy,
  decodeStartFcopy,
  encodeDoFcopyHeader,
  encodeStartFcopy,
  HV_DO_FCOPY,
  HV_FCOPY_HDR,
  HV_START_FCOPY,
  OVER_WRITE,
  W_MAX_PATH,
} from '../../../src/protocol/ic/fcopy.ts';
import {
  decodeVssMsg,
  encodeVssMsg,
  HV_VSS_MSG,
  VSS_OP_FREEZE,
  VSS_OP_REGISTER1,
} from '../../../src/protocol/ic/vss.ts';
import {
  decodeFcopyInt,
  decodeUapiFcopyMessage,
  encodeUapiStartFcopy,
  FCOPY_CURRENT_VERSION,
} from '../../../src/protocol/uapi/fcopy.ts';
import {
  decodeUapiVssWrite,
  encodeUapiVssReply,
  encodeVssRegisterReply,
} from '../../../src/protocol/uapi/vss.ts';
import { requirePeer } from '../../peers.ts';

test('layouts equal sizeof/offsetof of Linux include/uapi/linux/hyperv.h (gcc)', () => {
  requirePeer('gcc', 'gcc');
  const dir = mkdtempSync(`${tmpdir()}/hvis-fcopy-oracle-`);
  try {
    const fields: [string, string][] = [
      ['hv_fcopy_hdr', 'operation'],
      ['hv_fcopy_hdr', 'service_id0'],
      ['hv_fcopy_hdr', 'service_id1'],
      ['hv_start_fcopy', 'file_name'],
      ['hv_start_fcopy', 'path_name'],
      ['hv_start_fcopy', 'copy_flags'],
      ['hv_start_fcopy', 'file_size'],
      ['hv_do_fcopy', 'pad'],
      ['hv_do_fcopy', 'offset'],
      ['hv_do_fcopy', 'size'],
      ['hv_do_fcopy', 'data'],
      ['hv_vss_msg', 'error'],
      ['hv_vss_msg', 'vss_cf'],
    ];
    const c = `#include <stdio.h>\n#include <stddef.h>\n#include <linux/hyperv.h>\nint main(void){\n${['hv_fcopy_hdr', 'hv_start_fcopy', 'hv_do_fcopy', 'hv_vss_msg'].map((s) => `printf("${s} %zu\\n", sizeof(struct ${s}));`).join('\n')}\n${fields.map(([s, f]) => `printf("${s}.${f} %zu\\n", offsetof(struct ${s}, ${f}));`).join('\n')}\nprintf("W_MAX_PATH %d\\nDATA_FRAGMENT %d\\nOVER_WRITE %d\\nCREATE_PATH %d\\nFCOPY_CURRENT_VERSION %d\\nVSS_OP_REGISTER1 %d\\n", W_MAX_PATH, DATA_FRAGMENT, OVER_WRITE, CREATE_PATH, FCOPY_CURRENT_VERSION, VSS_OP_REGISTER1);\nreturn 0;}\n`;
    writeFileSync(`${dir}/o.c`, c);
    execFileSync('gcc', ['-o', `${dir}/o`, `${dir}/o.c`]);
    const got = Object.fromEntries(
      execFileSync(`${dir}/o`, { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map((l) => l.split(' ') as [string, string])
        .map(([k, v]) => [k, Number(v)]),
    );
    assert.deepEqual(got, {
      hv_fcopy_hdr: HV_FCOPY_HDR.size,
      hv_start_fcopy: HV_START_FCOPY.size,
      hv_do_fcopy: HV_DO_FCOPY.size,
      hv_vss_msg: HV_VSS_MSG.size,
      'hv_fcopy_hdr.operation': HV_FCOPY_HDR.offsets.operation,
      'hv_fcopy_hdr.service_id0': HV_FCOPY_HDR.offsets.service_id0,
      'hv_fcopy_hdr.service_id1': HV_FCOPY_HDR.offsets.service_id1,
      'hv_start_fcopy.file_name': HV_START_FCOPY.offsets.file_name,
      'hv_start_fcopy.path_name': HV_START_FCOPY.offsets.path_name,
      'hv_start_fcopy.copy_flags': HV_START_FCOPY.offsets.copy_flags,
      'hv_start_fcopy.file_size': HV_START_FCOPY.offsets.file_size,
      'hv_do_fcopy.pad': HV_DO_FCOPY.offsets.pad,
      'hv_do_fcopy.offset': HV_DO_FCOPY.offsets.offset,
      'hv_do_fcopy.size': HV_DO_FCOPY.offsets.size,
      'hv_do_fcopy.data': HV_DO_FCOPY.offsets.data,
      'hv_vss_msg.error': HV_VSS_MSG.offsets.error,
      'hv_vss_msg.vss_cf': HV_VSS_MSG.offsets.flags,
      W_MAX_PATH,
      DATA_FRAGMENT,
      OVER_WRITE,
      CREATE_PATH,
      FCOPY_CURRENT_VERSION,
      VSS_OP_REGISTER1,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('golden bytes: START_FILE_COPY (UTF-16 on the wire, UTF-8 to the daemon) and WRITE_TO_FILE', () => {
  const wire = new Uint8Array(HV_START_FCOPY.size).fill(0xee);
  encodeStartFcopy(
    { fileName: 'é.bin', pathName: '/tmp', copyFlags: OVER_WRITE | CREATE_PATH, fileSize: 0x1_0000_0005 },
    wire,
  );
  assert.deepEqual([...wire.subarray(0, 4)], [0, 0, 0, 0], 'START_FILE_COPY = 0');
  assert.deepEqual([...wire.subarray(36, 48)], [0xe9, 0, 0x2e, 0, 0x62, 0, 0x69, 0, 0x6e, 0, 0, 0]);
  assert.deepEqual([...wire.subarray(556, 566)], [0x2f, 0, 0x74, 0, 0x6d, 0, 0x70, 0, 0, 0]);
  assert.deepEqual([...wire.subarray(1076, 1088)], [3, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0]);
  const uapi = new Uint8Array(HV_START_FCOPY.size);
  encodeUapiStartFcopy(decodeStartFcopy(wire), uapi);
  assert.deepEqual([...uapi.subarray(36, 44)], [0xc3, 0xa9, 0x2e, 0x62, 0x69, 0x6e, 0, 0], 'UTF-8 é.bin');
  assert.deepEqual([...uapi.subarray(556, 561)], [0x2f, 0x74, 0x6d, 0x70, 0]);

  const w = new Uint8Array(HV_DO_FCOPY.size).fill(0xee);
  encodeDoFcopyHeader(0x2_0000_0010, 6144, w);
  assert.deepEqual([...w.subarray(0, 4)], [1, 0, 0, 0], 'WRITE_TO_FILE = 1');
  assert.deepEqual(
    [...w.subarray(36, 52)],
    [0, 0, 0, 0, 0x10, 0, 0, 0, 2, 0, 0, 0, 0, 0x18, 0, 0],
    'pad, offset, size',
  );
  assert.deepEqual(decodeDoFcopy(w), { offset: 0x2_0000_0010, size: 6144 });
});

test('golden bytes: hv_vss_msg, the REGISTER1 answer and daemon replies', () => {
  const b = new Uint8Array(12).fill(0xee);
  encodeVssMsg({ operation: VSS_OP_FREEZE, flags: 5 }, b);
  assert.deepEqual([...b], [5, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0]);
  assert.deepEqual([...encodeVssRegisterReply()], [129, 0, 0, 0]);
  assert.deepEqual([...encodeUapiVssReply(0x80004005)], [0x05, 0x40, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeUapiVssWrite(Uint8Array.of(129, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)), {
    operation: 129,
    error: 129,
    flags: 0,
  });
});

test('round trips: START (any names that fit), WRITE headers, VSS messages', () => {
  const name = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((s) => !s.includes('\0'));
  fc.assert(
    fc.property(name, name, fc.nat(3), fc.maxSafeNat(), (fileName, pathName, copyFlags, fileSize) => {
      const b = new Uint8Array(HV_START_FCOPY.size);
      encodeStartFcopy({ fileName, pathName, copyFlags, fileSize }, b);
      assert.deepEqual(decodeStartFcopy(b), { fileName, pathName, copyFlags, fileSize });
      const u = new Uint8Array(HV_START_FCOPY.size);
      encodeUapiStartFcopy({ fileName, pathName, copyFlags, fileSize }, u);
      assert.deepEqual(decodeUapiFcopyMessage(u), { op: 'start', fileName, pathName, copyFlags, fileSize });
    }),
  );
  fc.assert(
    fc.property(fc.maxSafeNat(), fc.integer({ min: 0, max: DATA_FRAGMENT }), (offset, size) => {
      const b = new Uint8Array(HV_DO_FCOPY.size);
      encodeDoFcopyHeader(offset, size, b);
      assert.deepEqual(decodeDoFcopy(b), { offset, size });
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.nat(0xffffffff), (operation, flags) => {
      const b = new Uint8Array(12);
      encodeVssMsg({ operation, flags }, b);
      assert.deepEqual(decodeVssMsg(b), { operation, flags });
    }),
  );
  assert.throws(() =>
    encodeStartFcopy(
      { fileName: 'x'.repeat(W_MAX_PATH), pathName: '/', copyFlags: 0, fileSize: 0 },
      new Uint8Array(1088),
    ),
  );
});

test('decoders are total: any bytes give a value or a ProtocolError', () => {
  const onlyProtocolErrors = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `unexpected ${(e as Error).name}: ${(e as Error).message}`);
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 7000 }), fc.nat(3), (bytes, op) => {
      if (bytes.length >= 4) bytes[0] = op;
      onlyProtocolErrors(() => decodeStartFcopy(bytes));
      onlyProtocolErrors(() => decodeDoFcopy(bytes));
      onlyProtocolErrors(() => decodeUapiFcopyMessage(bytes));
      onlyProtocolErrors(() => decodeFcopyInt(bytes));
      onlyProtocolErrors(() => decodeVssMsg(bytes));
      onlyProtocolErrors(() => decodeUapiVssWrite(bytes));
    }),
    { numRuns: 300 },
  );
  assert.throws(() => decodeDoFcopy(new Uint8Array(100)), ProtocolError);
  const big = new Uint8Array(HV_DO_FCOPY.size);
  big[0] = 1;
  new DataView(big.buffer).setUint32(48, DATA_FRAGMENT + 1, true);
  assert.throws(() => decodeDoFcopy(big), ProtocolError, 'size > 6144');
  assert.equal(
    decodeUapiFcopyMessage(Uint8Array.of(CANCEL_FCOPY, 0, 0, 0, ...new Uint8Array(32))).op,
    'cancel',
  );
});
