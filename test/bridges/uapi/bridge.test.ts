/** The uapi socket bridge: one message per frame both ways, EBUSY for a second opener, bad peers dropped. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { connectUapi } from '../../../src/bridges/uapi/client.ts';
import { encodeFrame, FrameReader, MAX_UAPI_FRAME } from '../../../src/bridges/uapi/framing.ts';
import { UapiSocketBridge } from '../../../src/bridges/uapi/server.ts';
import { UapiDevNode } from '../../../src/guest/devnode.ts';
import { isHvError } from '../../../src/protocol/errors.ts';

const dir = mkdtempSync(`${tmpdir()}/uapi-bridge-`);
after(() => rmSync(dir, { recursive: true, force: true }));

async function setup(name: string) {
  const written: Uint8Array[] = [];
  const node = new UapiDevNode('/dev/vmbus/hv_test', { onWrite: (m) => written.push(m) });
  const details: string[] = [];
  const bridge = await UapiSocketBridge.listen(`${dir}/${name}.sock`, () => node.open(), {
    onDetach: (_d, why) => details.push(why),
  });
  return { node, bridge, written, details };
}

const closed = (path: string, first: Buffer) =>
  new Promise<boolean>((res) => {
    const s = connect(path, () => s.write(first));
    s.on('close', () => res(true));
    s.on('error', () => {});
  });

test('frames map one to one onto writes and reads; the node is released when the socket closes', async () => {
  const { node, bridge, written } = await setup('a');
  const f = await connectUapi(bridge.path, '/dev/vmbus/hv_test');
  f.write(new Uint8Array([1, 2, 3]));
  f.write(new Uint8Array(7432).fill(9));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    written.map((w) => w.length),
    [3, 7432],
  );
  assert.equal(node.send(new Uint8Array([4, 5])), true);
  assert.deepEqual([...(await f.read())], [4, 5]);
  assert.equal(node.isOpen, true);
  f.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(node.isOpen, false);
  await bridge.close();
});

test('the node holds one unread message at a time (hv_utils_transport)', () => {
  const node = new UapiDevNode('/dev/vmbus/hv_x', { onWrite: () => {} });
  assert.equal(node.send(new Uint8Array([1])), false); // nobody has it open
  node.open();
  assert.equal(node.send(new Uint8Array([1])), true);
  assert.equal(node.send(new Uint8Array([2])), false);
});

test('a second opener is refused (EBUSY); oversize frames and bad HELLOs close the connection', async () => {
  const { bridge, details } = await setup('b');
  const f = await connectUapi(bridge.path, '/dev/vmbus/hv_test');
  const g = await connectUapi(bridge.path, '/dev/vmbus/hv_test');
  await assert.rejects(g.read(), (e) => isHvError(e, 'HV_ERR_CHANNEL_CLOSED'));
  assert.ok(details.some((d) => /EBUSY/.test(d)));
  const big = Buffer.alloc(4);
  big.writeUInt32LE(MAX_UAPI_FRAME + 1);
  assert.equal(await closed(bridge.path, big), true);
  assert.equal(await closed(bridge.path, encodeFrame(Buffer.from('no-nul-no-pid'))), true);
  f.close();
  await bridge.close();
});

test('the frame reader reassembles frames split anywhere', () => {
  const r = new FrameReader();
  const all = Buffer.concat([
    encodeFrame(Buffer.from('abc')),
    encodeFrame(Buffer.alloc(0)),
    encodeFrame(Buffer.from('z')),
  ]);
  const out: string[] = [];
  for (const b of all) out.push(...r.push(Buffer.from([b])).map((x) => x.toString()));
  assert.deepEqual(out, ['abc', '', 'z']);
});

test('feed hands over the same frames however the stream is cut, and refuses an oversize length split across chunks', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 9000 }), { maxLength: 8 }),
      fc.array(fc.nat(20000), { maxLength: 12 }),
      (frames, cuts) => {
        const all = Buffer.concat(frames.map((f) => encodeFrame(f)));
        const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
        const r = new FrameReader();
        const out: Buffer[] = [];
        let from = 0;
        for (const p of [...points, all.length]) {
          r.feed(all.subarray(from, p), (f) => out.push(Buffer.from(f)));
          from = p;
        }
        assert.deepEqual(
          out,
          frames.map((f) => Buffer.from(f)),
        );
      },
    ),
  );
  const r = new FrameReader();
  const big = Buffer.alloc(4);
  big.writeUInt32LE(MAX_UAPI_FRAME + 1);
  r.feed(big.subarray(0, 3), () => {});
  assert.throws(
    () => r.feed(big.subarray(3), () => {}),
    (e) => isHvError(e, 'HV_ERR_PROTOCOL'),
  );
});
