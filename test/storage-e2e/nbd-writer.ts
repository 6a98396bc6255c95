/**
 * A minimal NBD client for tests that must know exactly which writes were acknowledged: fixed newstyle,
 * NBD_OPT_EXPORT_NAME, then one request at a time (WRITE / READ / DISC), simple replies only.
 * Byte layouts from the NBD protocol specification (doc/proto.md): handshake, request (28 bytes) and
 * simple reply (16 bytes).
 */
import { connect, type Socket } from 'node:net';
import * as nbd from '../../src/bridges/nbd/protocol.ts';

export class NbdWriter {
  readonly #sock: Socket;
  #buf = Buffer.alloc(0);
  #want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  #closed: Error | null = null;
  #cookie = 0n;

  private constructor(sock: Socket) {
    this.#sock = sock;
    sock.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#pump();
    });
    const end = (e?: Error) => {
      this.#closed = e ?? new Error('NBD connection closed');
      this.#want?.reject(this.#closed);
      this.#want = null;
    };
    sock.on('close', () => end());
    sock.on('error', end);
  }

  #pump(): void {
    const w = this.#want;
    if (w && this.#buf.length >= w.n) {
      this.#want = null;
      const out = this.#buf.subarray(0, w.n);
      this.#buf = this.#buf.subarray(w.n);
      w.resolve(Buffer.from(out));
    }
  }

  #read(n: number): Promise<Buffer> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      this.#want = { n, resolve, reject };
      this.#pump();
    });
  }

  /** Connects to a Unix socket and opens `exportName`. @returns the client and the export size (bytes). */
  static async open(socketPath: string, exportName: string): Promise<{ client: NbdWriter; size: number }> {
    const sock = connect(socketPath);
    await new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    const c = new NbdWriter(sock);
    const hello = await c.#read(18);
    if (hello.readBigUInt64BE(0) !== nbd.NBD_INIT_MAGIC || hello.readBigUInt64BE(8) !== nbd.NBD_OPTS_MAGIC)
      throw new Error('not a newstyle NBD server');
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(nbd.NBD_FLAG_C_FIXED_NEWSTYLE | nbd.NBD_FLAG_C_NO_ZEROES);
    const name = Buffer.from(exportName);
    const opt = Buffer.alloc(16);
    opt.writeBigUInt64BE(nbd.NBD_OPTS_MAGIC, 0);
    opt.writeUInt32BE(nbd.NBD_OPT_EXPORT_NAME, 8);
    opt.writeUInt32BE(name.length, 12);
    sock.write(Buffer.concat([flags, opt, name]));
    const info = await c.#read(10);
    return { client: c, size: Number(info.readBigUInt64BE(0)) };
  }

  async #request(type: number, offset: number, length: number, data?: Uint8Array): Promise<Buffer> {
    const h = Buffer.alloc(28);
    const cookie = ++this.#cookie;
    h.writeUInt32BE(nbd.NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(cookie, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    this.#sock.write(data ? Buffer.concat([h, data]) : h);
    const r = await this.#read(16);
    if (r.readUInt32BE(0) !== nbd.NBD_SIMPLE_REPLY_MAGIC || r.readBigUInt64BE(8) !== cookie)
      throw new Error('bad NBD reply');
    const err = r.readUInt32BE(4);
    if (err !== 0) throw new Error(`NBD error ${err}`);
    return type === nbd.NBD_CMD_READ ? this.#read(length) : Buffer.alloc(0);
  }

  /** Resolves when the server acknowledged the write. */
  write(offset: number, data: Uint8Array): Promise<void> {
    return this.#request(nbd.NBD_CMD_WRITE, offset, data.length, data).then(() => {});
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.#request(nbd.NBD_CMD_READ, offset, length);
  }

  close(): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(nbd.NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(nbd.NBD_CMD_DISC, 6);
    this.#sock.end(h);
  }
}
