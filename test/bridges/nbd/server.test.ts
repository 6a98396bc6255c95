/**
 * The NBD server on its own (an in-memory export): TCP on 127.0.0.1 with libnbd's nbdinfo (NBD_OPT_LIST,
 * NBD_OPT_GO/INFO), the old NBD_OPT_EXPORT_NAME path and NBD_OPT_ABORT by hand (byte layouts from the NBD
 * protocol document), and hostile clients: bad magic, oversized options, random bytes — each costs only that
 * connection. Expected bytes come from doc/proto.md, not from the server.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { type NbdExport, NbdServer } from '../../../src/bridges/nbd/server.ts';
import { requirePeer } from '../../peers.ts';

const run = promisify(execFile);

function memExport(name: string, size: number): NbdExport & { bytes: Uint8Array } {
  const bytes = new Uint8Array(size);
  return {
    name,
    size,
    blockSize: 512,
    bytes,
    read: async (b, o) => void b.set(bytes.subarray(o, o + b.length)),
    write: async (b, o) => void bytes.set(b, o),
    flush: async () => {},
  };
}

/** Reads exactly n bytes from a socket (or what arrived before it closed). */
function reader(s: Socket) {
  let buf = Buffer.alloc(0);
  let closed = false;
  let wake: (() => void) | null = null;
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    wake?.();
  });
  s.on('close', () => {
    closed = true;
    wake?.();
  });
  return {
    async read(n: number): Promise<Buffer> {
      while (buf.length < n && !closed) await new Promise<void>((r) => (wake = r));
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      return out;
    },
    get closed() {
      return closed;
    },
  };
}

async function open(port: number) {
  const s = connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  return { s, r: reader(s) };
}

test('nbdinfo over TCP lists the exports and reads size and block sizes', async () => {
  const nbdinfo = requirePeer('nbdinfo', 'libnbd-bin');
  const srv = new NbdServer([memExport('a', 2 ** 20), memExport('b', 3 * 2 ** 20)]);
  const uri = await srv.listen({ port: 0 });
  try {
    assert.match(uri, /^nbd:\/\/127\.0\.0\.1:\d+$/);
    const list = await run(nbdinfo, ['--list', '--json', uri]);
    const j = JSON.parse(list.stdout) as { exports: { 'export-name': string; 'export-size': number }[] };
    assert.deepEqual(
      j.exports.map((e) => [e['export-name'], e['export-size']]),
      [
        ['a', 2 ** 20],
        ['b', 3 * 2 ** 20],
      ],
    );
    assert.equal((await run(nbdinfo, ['--size', `${uri}/b`])).stdout.trim(), String(3 * 2 ** 20));
  } finally {
    await srv.close();
  }
});

test('NBD_OPT_EXPORT_NAME by hand: greeting, 10-byte reply with NO_ZEROES, READ, DISC; ABORT gets an ACK', async () => {
  const e = memExport('disk', 4096);
  e.bytes.fill(0x5a, 512, 1024);
  const srv = new NbdServer([e]);
  await srv.listen({ port: 0 });
  try {
    const { s, r } = await open(srv.port!);
    const hello = await r.read(18);
    assert.equal(hello.subarray(0, 8).toString('latin1'), 'NBDMAGIC');
    assert.equal(hello.subarray(8, 16).toString('latin1'), 'IHAVEOPT');
    assert.equal(hello.readUInt16BE(16), 0b11, 'FIXED_NEWSTYLE | NO_ZEROES');
    const clientFlags = Buffer.alloc(4);
    clientFlags.writeUInt32BE(0b11, 0); // NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES
    s.write(clientFlags);
    const o = Buffer.alloc(16 + 4);
    Buffer.from('IHAVEOPT').copy(o, 0);
    o.writeUInt32BE(1, 8); // NBD_OPT_EXPORT_NAME
    o.writeUInt32BE(4, 12);
    Buffer.from('disk').copy(o, 16);
    s.write(o);
    const rep = await r.read(10);
    assert.equal(rep.readBigUInt64BE(0), 4096n);
    assert.equal(rep.readUInt16BE(8) & 1, 1, 'NBD_FLAG_HAS_FLAGS');
    const req = Buffer.alloc(28);
    req.writeUInt32BE(0x25609513, 0);
    req.writeUInt16BE(0, 6); // NBD_CMD_READ
    req.writeBigUInt64BE(0xabcdefn, 8);
    req.writeBigUInt64BE(512n, 16);
    req.writeUInt32BE(512, 24);
    s.write(req);
    const hdr = await r.read(16);
    assert.equal(hdr.readUInt32BE(0), 0x67446698);
    assert.equal(hdr.readUInt32BE(4), 0);
    assert.equal(hdr.readBigUInt64BE(8), 0xabcdefn);
    assert.ok((await r.read(512)).every((b) => b === 0x5a));
    // Unaligned read → EINVAL (22), the connection stays.
    req.writeBigUInt64BE(1n, 16);
    req.writeUInt32BE(100, 24);
    s.write(req);
    assert.equal((await r.read(16)).readUInt32BE(4), 22);
    req.writeUInt16BE(2, 6); // NBD_CMD_DISC
    s.write(req);
    await r.read(1);
    assert.ok(r.closed);

    const a = await open(srv.port!);
    await a.r.read(18);
    const ab = Buffer.alloc(20);
    ab.writeUInt32BE(0b11, 0);
    Buffer.from('IHAVEOPT').copy(ab, 4);
    ab.writeUInt32BE(2, 12); // NBD_OPT_ABORT
    a.s.write(ab);
    const ack = await a.r.read(20);
    assert.equal(ack.readBigUInt64BE(0), 0x3e889045565a9n);
    assert.equal(ack.readUInt32BE(8), 2);
    assert.equal(ack.readUInt32BE(12), 1, 'NBD_REP_ACK');
  } finally {
    await srv.close();
  }
});

test('hostile clients lose only their connection', async () => {
  const nbdinfo = requirePeer('nbdinfo', 'libnbd-bin');
  const srv = new NbdServer([memExport('x', 2 ** 20)]);
  const uri = await srv.listen({ port: 0 });
  try {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 200 }), async (junk) => {
        const { s, r } = await open(srv.port!);
        await r.read(18);
        s.write(Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from(junk)]));
        s.end();
        await new Promise((res) => setTimeout(res, 2));
        s.destroy();
      }),
      { numRuns: 60 },
    );
    const big = await open(srv.port!);
    await big.r.read(18);
    const o = Buffer.alloc(20);
    o.writeUInt32BE(3, 0);
    Buffer.from('IHAVEOPT').copy(o, 4);
    o.writeUInt32BE(7, 12);
    o.writeUInt32BE(0x7fffffff, 16); // 2 GiB option: refused without reading it
    big.s.write(o);
    await big.r.read(1);
    assert.ok(big.r.closed);
    assert.ok(srv.stats.badClients >= 1);
    assert.equal((await run(nbdinfo, ['--size', `${uri}/x`])).stdout.trim(), String(2 ** 20));
  } finally {
    await srv.close();
  }
});
