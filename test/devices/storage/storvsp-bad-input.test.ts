/**
 * storvsp against a hostile guest, driven packet by packet through its ChannelHandler (a thrown exception
 * is what makes the VMBus server close that channel): init-state rules, version refusal, out-of-range
 * LBAs, transfer lengths past the GPA range, PFNs outside guest memory, unknown opcodes and LUNs, and
 * random packets. Expected statuses are OpenVMM storvsp's (devices.md B.4, B.7, B.10).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { StorvspController } from '../../../src/devices/storage/host.ts';
import { createDisk } from '../../../src/disk/open.ts';
import { ProtocolError } from '../../../src/protocol/errors.ts';
import { Guid } from '../../../src/protocol/guid.ts';
import {
  encodeGpaDirectHeader,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
} from '../../../src/protocol/vmbus/packet.ts';
import * as vs from '../../../src/protocol/vstor/constants.ts';
import {
  newVmscsiRequest,
  readVmscsiRequest,
  writeVmscsiRequest,
} from '../../../src/protocol/vstor/packet.ts';
import type { ChannelHandler, ChannelIo } from '../../../src/vmbus/channel-io.ts';
import { GuestMemory } from '../../../src/vmbus/memory.ts';
import type { OfferHandle, OpenInfo } from '../../../src/vmbus/server.ts';

const dir = mkdtempSync(join(tmpdir(), 'hvis-storvsp-bad-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Sent {
  type: number;
  transId: number;
  payload: Uint8Array;
}

async function harness(profile: 'WS2012' | 'WS2022' = 'WS2022') {
  const memory = new GuestMemory(2 ** 20);
  const sent: Sent[] = [];
  let factory: ((ch: ChannelIo, info: OpenInfo) => ChannelHandler) | null = null;
  const c = new StorvspController({
    server: {
      offer: (_o, f) => {
        factory = f;
        return { relid: 1, state: 'offered', rescind() {} } as unknown as OfferHandle;
      },
    },
    instance: Guid.parse('f8b3781b-1e82-4818-a1c3-63d806ec15bb'),
    profile,
  });
  const disk = await createDisk(join(dir, `${Math.random()}.raw`), {
    size: 2 ** 20,
    type: 'fixed',
    format: 'Raw',
  });
  c.attach(0, disk, new Uint8Array(16));
  c.offer();
  const io: ChannelIo = {
    relid: 1,
    send(type, _flags, transId, payload) {
      sent.push({ type, transId, payload: payload.slice() });
      return true;
    },
    close() {},
  };
  const h = factory!(io, { memory } as unknown as OpenInfo);
  let id = 1;
  const control = (operation: number, payload: number[] = []) => {
    const b = new Uint8Array(64);
    new DataView(b.buffer).setUint32(0, operation, true);
    b.set(payload, 12);
    h.onPacket({
      type: VM_PKT_DATA_INBAND,
      flags: 1,
      transId: id++,
      payload: b,
      extHeader: new Uint8Array(0),
    });
    return sent.at(-1)!;
  };
  const status = (s: Sent) => new DataView(s.payload.buffer).getUint32(8, true);
  const srb = async (
    cdb: number[],
    opts: {
      lun?: number;
      len?: number;
      dataIn?: boolean;
      range?: { byteCount: number; pfns: number[] };
    } = {},
  ) => {
    const b = new Uint8Array(64);
    new DataView(b.buffer).setUint32(0, vs.VSTOR_OPERATION_EXECUTE_SRB, true);
    const r = newVmscsiRequest();
    r.length = 0x34;
    r.lun = opts.lun ?? 0;
    r.cdbLength = cdb.length;
    r.dataIn = opts.len ? (opts.dataIn === false ? 0 : 1) : 2;
    r.dataTransferLength = opts.len ?? 0;
    r.cdbOrSense.set(cdb);
    writeVmscsiRequest(b, 12, r);
    const before = sent.length;
    const range =
      opts.range ??
      (opts.len
        ? { byteCount: opts.len, pfns: Array.from({ length: Math.ceil(opts.len / 4096) }, (_, i) => 16 + i) }
        : null);
    h.onPacket(
      range
        ? {
            type: VM_PKT_DATA_USING_GPA_DIRECT,
            flags: 1,
            transId: id++,
            payload: b,
            extHeader: encodeGpaDirectHeader([{ byteOffset: 0, ...range }]),
          }
        : { type: VM_PKT_DATA_INBAND, flags: 1, transId: id++, payload: b, extHeader: new Uint8Array(0) },
    );
    for (let i = 0; i < 200 && sent.length === before; i++) await new Promise((res) => setTimeout(res, 1));
    const s = sent.at(-1)!;
    return { sent: s, status: status(s), req: readVmscsiRequest(s.payload, 12, newVmscsiRequest()) };
  };
  const init = () => {
    control(vs.VSTOR_OPERATION_BEGIN_INITIALIZATION);
    control(vs.VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, [0x02, 0x06]);
    control(vs.VSTOR_OPERATION_QUERY_PROPERTIES);
    control(vs.VSTOR_OPERATION_END_INITIALIZATION);
  };
  return { h, sent, control, status, srb, init, memory, close: () => disk.close() };
}

test('init state machine: out-of-order operations → INVALID_DEVICE_STATE; replies are COMPLETE_IO completions', async () => {
  const t = await harness();
  const r = await t.srb([0x00]);
  assert.equal(r.status, vs.STATUS_INVALID_DEVICE_STATE, 'EXECUTE_SRB before BEGIN_INITIALIZATION');
  assert.equal(t.status(t.control(vs.VSTOR_OPERATION_END_INITIALIZATION)), vs.STATUS_INVALID_DEVICE_STATE);
  const b = t.control(vs.VSTOR_OPERATION_BEGIN_INITIALIZATION);
  assert.equal(b.type, VM_PKT_COMP);
  assert.equal(new DataView(b.payload.buffer).getUint32(0, true), vs.VSTOR_OPERATION_COMPLETE_IO);
  assert.equal(b.payload.length, 64);
  assert.equal(
    t.status(t.control(vs.VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, [0x03, 0x07])),
    vs.STATUS_REVISION_MISMATCH,
  );
  assert.equal(t.status(t.control(vs.VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, [0x02, 0x06])), 0);
  await t.close();
});

test('a WS2012 host refuses WIN10 (0x0602) and accepts WIN8 (0x0501)', async () => {
  const t = await harness('WS2012');
  t.control(vs.VSTOR_OPERATION_BEGIN_INITIALIZATION);
  assert.equal(
    t.status(t.control(vs.VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, [0x02, 0x06])),
    vs.STATUS_REVISION_MISMATCH,
  );
  assert.equal(t.status(t.control(vs.VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, [0x01, 0x05])), 0);
  await t.close();
});

test('bad SRBs get error statuses and the channel keeps working', async () => {
  const t = await harness();
  t.init();
  // READ(10) past the 2048-block disk: CHECK CONDITION, ILLEGAL REQUEST / LBA OUT OF RANGE (0x21).
  let r = await t.srb([0x28, 0, 0, 0, 0x08, 0x00, 0, 0, 1, 0], { len: 512 });
  assert.equal(r.req.scsiStatus, 0x02);
  assert.equal(r.req.srbStatus, vs.SRB_STATUS_INVALID_REQUEST | vs.SRB_STATUS_AUTOSENSE_VALID);
  assert.deepEqual([r.req.cdbOrSense[2], r.req.cdbOrSense[12]], [0x05, 0x21]);
  assert.equal(r.req.dataTransferLength, 0);
  // Unknown opcode 0xC5: ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE (0x20).
  r = await t.srb([0xc5, 0, 0, 0, 0, 0]);
  assert.deepEqual([r.req.scsiStatus, r.req.cdbOrSense[2], r.req.cdbOrSense[12]], [0x02, 0x05, 0x20]);
  // Transfer length past the GPA range given.
  r = await t.srb([0x28, 0, 0, 0, 0, 0, 0, 0, 16, 0], { len: 8192, range: { byteCount: 4096, pfns: [16] } });
  assert.equal(r.req.srbStatus & 0x3f, vs.SRB_STATUS_INVALID_REQUEST);
  // CDB asks for more blocks than the buffer holds.
  r = await t.srb([0x28, 0, 0, 0, 0, 0, 0, 0, 16, 0], { len: 4096 });
  assert.equal(r.req.scsiStatus, 0x02);
  // No disk at LUN 9: INQUIRY says "not present", other commands SRB_STATUS_INVALID_LUN (0xC00000C0).
  r = await t.srb([0x12, 0, 0, 0, 36, 0], { lun: 9, len: 36 });
  assert.equal(r.req.srbStatus, vs.SRB_STATUS_SUCCESS);
  assert.equal(t.memory.pageView(16, 1)![0], 0x7f);
  r = await t.srb([0x00, 0, 0, 0, 0, 0], { lun: 9 });
  assert.equal(r.req.srbStatus, vs.SRB_STATUS_INVALID_LUN);
  assert.equal(r.status, 0xc00000c0);
  // cdb_length 2 for a 16-byte opcode: the missing bytes read as zero (allocation length 0), no crash.
  r = await t.srb([0x9e, 0x10], { len: 32 });
  assert.equal(r.req.srbStatus, vs.SRB_STATUS_SUCCESS);
  assert.equal(r.req.dataTransferLength, 0);
  // The channel still serves good I/O.
  r = await t.srb([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0], { len: 4096 });
  assert.equal(r.req.srbStatus, vs.SRB_STATUS_SUCCESS);
  assert.equal(r.req.dataTransferLength, 4096);
  await t.close();
});

test('a GPA range outside guest memory or a packet shorter than its header closes the channel (throws)', async () => {
  const t = await harness();
  t.init();
  await assert.rejects(
    t.srb([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { len: 512, range: { byteCount: 512, pfns: [1 << 30] } }),
    ProtocolError,
  );
  assert.throws(
    () =>
      t.h.onPacket({
        type: VM_PKT_DATA_INBAND,
        flags: 1,
        transId: 5,
        payload: new Uint8Array(8),
        extHeader: new Uint8Array(0),
      }),
    ProtocolError,
  );
  await t.close();
});

test('random packets: every one gets a completion or a ProtocolError, nothing else', async () => {
  const t = await harness();
  t.init();
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 0, maxLength: 80 }),
      fc.constantFrom(VM_PKT_DATA_INBAND, VM_PKT_DATA_USING_GPA_DIRECT),
      fc.uint8Array({ maxLength: 40 }),
      async (payload, type, ext) => {
        const before = t.sent.length;
        try {
          t.h.onPacket({ type, flags: 1, transId: 77, payload, extHeader: ext });
        } catch (e) {
          assert.ok(e instanceof ProtocolError, String(e));
          return;
        }
        for (let i = 0; i < 200 && t.sent.length === before; i++)
          await new Promise((res) => setTimeout(res, 1));
        assert.equal(t.sent.length, before + 1, 'one completion');
        assert.equal(t.sent.at(-1)!.transId, 77);
      },
    ),
    { numRuns: 300 },
  );
  await t.close();
});
