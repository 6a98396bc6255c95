import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Guid } from '../../../src/protocol/guid.ts';
import {
  HV_HEART_BEAT_GUID,
  HV_NIC_GUID,
  lsvmbusName,
  VMBUS_DEVICE_CLASSES,
} from '../../../src/protocol/vmbus/device-guids.ts';

test('class GUIDs travel mixed-endian: HV_NIC_GUID is GUID_INIT(0xf8615163, 0xdf3e, 0x46c5, 0x91, 0x3f, ...)', () => {
  assert.deepEqual(
    HV_NIC_GUID.bytes,
    Uint8Array.of(
      0x63,
      0x51,
      0x61,
      0xf8,
      0x3e,
      0xdf,
      0xc5,
      0x46,
      0x91,
      0x3f,
      0xf2,
      0xd2,
      0xf9,
      0x65,
      0xed,
      0x0e,
    ),
  );
});

test('lsvmbus names (tools/hv/lsvmbus) and Unknown for unlisted classes', () => {
  assert.equal(lsvmbusName(HV_HEART_BEAT_GUID), '[Heartbeat]');
  assert.equal(lsvmbusName(Guid.parse('ba6163d9-04a1-4d29-b605-72e2ffb1dc7f')), 'Synthetic SCSI Controller');
  assert.equal(lsvmbusName(Guid.parse('00000000-facb-11e6-bd58-64006a7986d3')), 'Unknown');
});

test('the table holds the 20 GUIDs of Linux hyperv.h, each once', () => {
  assert.equal(VMBUS_DEVICE_CLASSES.length, 20);
  assert.equal(new Set(VMBUS_DEVICE_CLASSES.map((c) => c.guid.toString())).size, 20);
});
