/**
 * An NBD server (fixed newstyle, simple replies) exporting block devices on 127.0.0.1 (TCP) or a Unix
 * socket, so real clients (qemu-img, qemu-io, qemu-nbd, nbdinfo, nbdcopy, fio's nbd engine) can use them.
 * Options: EXPORT_NAME, ABORT, LIST, INFO, GO (INFO_EXPORT, and INFO_NAME / INFO_DESCRIPTION /
 * INFO_BLOCK_SIZE on request); STRUCTURED_REPLY and STARTTLS are answered NBD_REP_ERR_UNSUP, so there is no
 * block status. Commands: READ, WRITE (FUA), FLUSH, TRIM, WRITE_ZEROES, DISC. Requests are served
 * concurrently (replies may come out of order, matched by cookie). Offsets and lengths must be multiples of
 * the export's block size (advertised as the minimum block size) else EINVAL; ranges past the end → EINVAL
 * (reads) / ENOSPC (writes). A client breaking the framing is disconnected; the server goes on.
 * Source: NBD protocol specification doc/proto.md (NetworkBlockDevice/nbd).
 */

import { unlinkSync } from 'node:fs';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { HvError } from '../../protocol/errors.ts';
import * as nbd from './protocol.ts';

/** What an export needs of a block device (a guest disk, or any BlockDevice). */
export interface NbdExport {
  name: string;
  description?: string;
  /** Bytes; read at each new connection (an online resize shows in the next handshake). */
  readonly size: number;
  readonly blockSize: number;
  readonly readOnly?: boolean;
  read(buf: Uint8Array, offset: number): Promise<void>;
  write(buf: Uint8Array, offset: number): Promise<void>;
  flush(): Promise<void>;
  trim?(offset: number, length: number): Promise<void>;
}

/** Largest request payload accepted (the preferred/maximum block size advertised), 32 MiB. */
export const NBD_MAX_PAYLOAD = 32 * 2 ** 20;
const MAX_OPTION_BYTES = 4096 + 64;
const MAX_IN_FLIGHT = 64;

export type NbdListen = { host?: '127.0.0.1'; port: number } | { path: string };

/** Buffers socket data and hands out exact byte counts. */
class ByteReader {
  #chunks: Buffer[] = [];
  #have = 0;
  #waiter: (() => void) | null = null;
  #ended = false;

  constructor(sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.#chunks.push(d);
      this.#have += d.length;
      this.#wake();
    });
    const end = () => {
      this.#ended = true;
      this.#wake();
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', end);
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /** Exactly `n` bytes, or null at end of stream. */
  async read(n: number): Promise<Buffer | null> {
    while (this.#have < n) {
      if (this.#ended) return null;
      await new Promise<void>((r) => {
        this.#waiter = r;
      });
    }
    return this.take(n);
  }

  /**
   * Exactly `n` bytes if that many are buffered, else null (then `read`): the request loop takes whole
   * requests that arrived together without a promise per header and payload. The result is a view into the
   * socket's chunk when it lies inside one (Node hands each `data` event a fresh buffer, never reused).
   */
  take(n: number): Buffer | null {
    if (this.#have < n) return null;
    if (n === 0) return Buffer.alloc(0);
    let out: Buffer;
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let o = 0;
      while (o < n) {
        const c = this.#chunks[0]!;
        const take = Math.min(c.length, n - o);
        c.copy(out, o, 0, take);
        o += take;
        if (take === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(take);
      }
    }
    this.#have -= n;
    return out;
  }
}

export class NbdServer {
  readonly #exports = new Map<string, NbdExport>();
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #path: string | null = null;
  /** Requests answered with an error, connections dropped for framing errors (diagnostics). */
  readonly stats = { requests: 0, errors: 0, badClients: 0 };

  constructor(exports: readonly NbdExport[]) {
    for (const e of exports) this.#exports.set(e.name, e);
    this.#server = createServer((s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.setNoDelay(true);
      void this.#serve(s).catch(() => s.destroy());
    });
  }

  /** Adds or replaces an export (by name). The first export also answers the default name "". */
  add(e: NbdExport): void {
    this.#exports.set(e.name, e);
  }

  remove(name: string): void {
    this.#exports.delete(name);
  }

  /**
   * Listens on 127.0.0.1:`port` (0 = any free port) or on a Unix socket path (an old socket file there is
   * replaced). @returns the URI clients use (`nbd://127.0.0.1:PORT` or `nbd+unix:///?socket=PATH`).
   */
  async listen(at: NbdListen): Promise<string> {
    if ('path' in at) {
      try {
        unlinkSync(at.path);
      } catch {
        // no stale socket
      }
      this.#path = at.path;
    }
    await new Promise<void>((res, rej) => {
      this.#server.once('error', rej);
      if ('path' in at) this.#server.listen(at.path, res);
      else this.#server.listen(at.port, '127.0.0.1', res);
    });
    if ('path' in at) return `nbd+unix:///?socket=${at.path}`;
    return `nbd://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** TCP port when listening on TCP. */
  get port(): number | null {
    const a = this.#server.address();
    return a && typeof a === 'object' ? a.port : null;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
    if (this.#path) {
      try {
        unlinkSync(this.#path);
      } catch {
        // already gone
      }
    }
  }

  #find(name: string): NbdExport | undefined {
    return this.#exports.get(name) ?? (name === '' ? this.#exports.values().next().value : undefined);
  }

  async #serve(s: Socket): Promise<void> {
    const r = new ByteReader(s);
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(nbd.NBD_INIT_MAGIC, 0);
    hello.writeBigUInt64BE(nbd.NBD_OPTS_MAGIC, 8);
    hello.writeUInt16BE(nbd.NBD_FLAG_FIXED_NEWSTYLE | nbd.NBD_FLAG_NO_ZEROES, 16);
    s.write(hello);
    const cf = await r.read(4);
    if (!cf) return;
    const clientFlags = cf.readUInt32BE(0);
    if (clientFlags & ~(nbd.NBD_FLAG_C_FIXED_NEWSTYLE | nbd.NBD_FLAG_C_NO_ZEROES)) return this.#bad(s);
    const noZeroes = (clientFlags & nbd.NBD_FLAG_C_NO_ZEROES) !== 0;
    for (;;) {
      const h = await r.read(16);
      if (!h) return;
      if (h.readBigUInt64BE(0) !== nbd.NBD_OPTS_MAGIC) return this.#bad(s);
      const option = h.readUInt32BE(8);
      const len = h.readUInt32BE(12);
      if (len > MAX_OPTION_BYTES) return this.#bad(s);
      const data = len > 0 ? await r.read(len) : Buffer.alloc(0);
      if (!data) return;
      const reply = (type: number, body: Buffer = Buffer.alloc(0)) => {
        const b = Buffer.alloc(20 + body.length);
        b.writeBigUInt64BE(nbd.NBD_REP_MAGIC, 0);
        b.writeUInt32BE(option, 8);
        b.writeUInt32BE(type, 12);
        b.writeUInt32BE(body.length, 16);
        body.copy(b, 20);
        s.write(b);
      };
      if (option === nbd.NBD_OPT_EXPORT_NAME) {
        const e = this.#find(data.toString('utf8'));
        if (!e) return void s.end();
        const b = Buffer.alloc(noZeroes ? 10 : 134);
        b.writeBigUInt64BE(BigInt(e.size), 0);
        b.writeUInt16BE(this.#flags(e), 8);
        s.write(b);
        return this.#transmit(s, r, e);
      }
      if (option === nbd.NBD_OPT_ABORT) {
        reply(nbd.NBD_REP_ACK);
        s.end();
        return;
      }
      if (option === nbd.NBD_OPT_LIST) {
        if (len !== 0) {
          reply(nbd.NBD_REP_ERR_INVALID);
          continue;
        }
        for (const name of this.#exports.keys()) {
          const n = Buffer.from(name, 'utf8');
          const b = Buffer.alloc(4 + n.length);
          b.writeUInt32BE(n.length, 0);
          n.copy(b, 4);
          reply(nbd.NBD_REP_SERVER, b);
        }
        reply(nbd.NBD_REP_ACK);
        continue;
      }
      if (option === nbd.NBD_OPT_INFO || option === nbd.NBD_OPT_GO) {
        const parsed = parseInfoRequest(data);
        if (!parsed) {
          reply(nbd.NBD_REP_ERR_INVALID);
          continue;
        }
        const e = this.#find(parsed.name);
        if (!e) {
          reply(nbd.NBD_REP_ERR_UNKNOWN);
          continue;
        }
        const info = Buffer.alloc(12);
        info.writeUInt16BE(nbd.NBD_INFO_EXPORT, 0);
        info.writeBigUInt64BE(BigInt(e.size), 2);
        info.writeUInt16BE(this.#flags(e), 10);
        reply(nbd.NBD_REP_INFO, info);
        for (const t of parsed.requests) {
          if (t === nbd.NBD_INFO_BLOCK_SIZE) {
            const b = Buffer.alloc(14);
            b.writeUInt16BE(t, 0);
            b.writeUInt32BE(e.blockSize, 2);
            b.writeUInt32BE(Math.max(e.blockSize, 4096), 6);
            b.writeUInt32BE(NBD_MAX_PAYLOAD, 10);
            reply(nbd.NBD_REP_INFO, b);
          } else if (t === nbd.NBD_INFO_NAME || t === nbd.NBD_INFO_DESCRIPTION) {
            const text = Buffer.from(t === nbd.NBD_INFO_NAME ? e.name : (e.description ?? ''), 'utf8');
            const b = Buffer.alloc(2 + text.length);
            b.writeUInt16BE(t, 0);
            text.copy(b, 2);
            reply(nbd.NBD_REP_INFO, b);
          }
        }
        reply(nbd.NBD_REP_ACK);
        if (option === nbd.NBD_OPT_GO) return this.#transmit(s, r, e);
        continue;
      }
      reply(nbd.NBD_REP_ERR_UNSUP);
    }
  }

  #flags(e: NbdExport): number {
    let f =
      nbd.NBD_FLAG_HAS_FLAGS | nbd.NBD_FLAG_SEND_FLUSH | nbd.NBD_FLAG_SEND_FUA | nbd.NBD_FLAG_CAN_MULTI_CONN;
    if (e.readOnly) f |= nbd.NBD_FLAG_READ_ONLY;
    else f |= nbd.NBD_FLAG_SEND_WRITE_ZEROES | (e.trim ? nbd.NBD_FLAG_SEND_TRIM : 0);
    return f;
  }

  #bad(s: Socket): void {
    this.stats.badClients++;
    s.destroy();
  }

  async #transmit(s: Socket, r: ByteReader, e: NbdExport): Promise<void> {
    const c: Conn = { s, e, inFlight: 0, corked: false, waiter: null };
    for (;;) {
      const h = r.take(nbd.NBD_REQUEST_SIZE) ?? (await r.read(nbd.NBD_REQUEST_SIZE));
      if (!h) break;
      if (h.readUInt32BE(0) !== nbd.NBD_REQUEST_MAGIC) return this.#bad(s);
      const flags = h.readUInt16BE(4);
      const type = h.readUInt16BE(6);
      const cookie = h.subarray(8, 16);
      const hi = h.readUInt32BE(16);
      const offset = hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 0x100000000 + h.readUInt32BE(20);
      const length = h.readUInt32BE(24);
      if (type === nbd.NBD_CMD_DISC) break;
      let payload: Buffer | null = null;
      if (type === nbd.NBD_CMD_WRITE) {
        if (length > NBD_MAX_PAYLOAD) return this.#bad(s);
        payload = r.take(length) ?? (await r.read(length));
        if (!payload) break;
      }
      this.stats.requests++;
      c.inFlight++;
      void this.#request(c, type, flags, cookie, offset, length, payload);
      if (c.inFlight >= MAX_IN_FLIGHT) await new Promise<void>((w) => (c.waiter = w));
    }
    while (c.inFlight > 0) await new Promise<void>((w) => (c.waiter = w));
    s.end();
  }

  /** Serves one request and replies; never rejects (errors become the reply's error code). */
  async #request(
    c: Conn,
    type: number,
    flags: number,
    cookie: Buffer,
    offset: number,
    length: number,
    payload: Buffer | null,
  ): Promise<void> {
    const e = c.e;
    let err = 0;
    let data: Buffer | null = null;
    const bs = e.blockSize;
    const aligned = offset % bs === 0 && length % bs === 0;
    const inside = offset + length <= e.size;
    try {
      switch (type) {
        case nbd.NBD_CMD_READ:
          if (length > NBD_MAX_PAYLOAD || !aligned || !inside) err = nbd.NBD_EINVAL;
          else {
            data = Buffer.allocUnsafe(nbd.NBD_SIMPLE_REPLY_SIZE + length);
            await e.read(data.subarray(nbd.NBD_SIMPLE_REPLY_SIZE), offset);
          }
          break;
        case nbd.NBD_CMD_WRITE:
          if (e.readOnly) err = nbd.NBD_EPERM;
          else if (!inside) err = nbd.NBD_ENOSPC;
          else if (!aligned) err = nbd.NBD_EINVAL;
          else {
            await e.write(payload!, offset);
            if (flags & nbd.NBD_CMD_FLAG_FUA) await e.flush();
          }
          break;
        case nbd.NBD_CMD_FLUSH:
          await e.flush();
          break;
        case nbd.NBD_CMD_TRIM: {
          if (e.readOnly) err = nbd.NBD_EPERM;
          else if (!inside) err = nbd.NBD_ENOSPC;
          else if (e.trim) {
            // Trim is advisory: only whole blocks inside the range.
            const start = Math.ceil(offset / bs) * bs;
            const end = Math.floor((offset + length) / bs) * bs;
            if (end > start) await e.trim(start, end - start);
            if (flags & nbd.NBD_CMD_FLAG_FUA) await e.flush();
          }
          break;
        }
        case nbd.NBD_CMD_WRITE_ZEROES:
          if (e.readOnly) err = nbd.NBD_EPERM;
          else if (!inside) err = nbd.NBD_ENOSPC;
          else if (!aligned) err = nbd.NBD_EINVAL;
          else {
            const chunk = Math.min(length, 4 * 2 ** 20);
            const zeros = new Uint8Array(chunk);
            for (let done = 0; done < length; done += chunk)
              await e.write(zeros.subarray(0, Math.min(chunk, length - done)), offset + done);
            if (flags & nbd.NBD_CMD_FLAG_FUA) await e.flush();
          }
          break;
        default:
          err = nbd.NBD_EINVAL;
      }
    } catch (x) {
      err = x instanceof HvError && x.code === 'HV_ERR_INVALID_ARGUMENT' ? nbd.NBD_EINVAL : nbd.NBD_EIO;
    }
    if (err !== 0) this.stats.errors++;
    const out = err === 0 && data ? data : Buffer.allocUnsafe(nbd.NBD_SIMPLE_REPLY_SIZE);
    out.writeUInt32BE(nbd.NBD_SIMPLE_REPLY_MAGIC, 0);
    out.writeUInt32BE(err, 4);
    cookie.copy(out, 8);
    reply(c, out);
    c.inFlight--;
    const w = c.waiter;
    c.waiter = null;
    w?.();
  }
}

/** One transmission-phase connection: its export, requests being served, reply batching. */
interface Conn {
  s: Socket;
  e: NbdExport;
  inFlight: number;
  /** Replies are being gathered (the socket is corked until the current tick's work is done). */
  corked: boolean;
  /** The request loop, waiting for a free slot or for the last reply. */
  waiter: (() => void) | null;
}

/**
 * Sends a reply. Replies finished in the same tick (completions of several requests arrive together) go
 * out in one writev: the socket is corked at the first and uncorked once the tick's promise jobs are done,
 * instead of a send per 16-byte reply.
 */
function reply(c: Conn, out: Buffer): void {
  if (c.s.destroyed) return;
  if (!c.corked) {
    c.corked = true;
    c.s.cork();
    process.nextTick(uncork, c);
  }
  c.s.write(out);
}

function uncork(c: Conn): void {
  c.corked = false;
  c.s.uncork();
}

/** NBD_OPT_INFO/GO data: u32 name length, name, u16 count, count × u16. Null when malformed. */
function parseInfoRequest(d: Buffer): { name: string; requests: number[] } | null {
  if (d.length < 6) return null;
  const n = d.readUInt32BE(0);
  if (n > d.length - 6) return null;
  const name = d.subarray(4, 4 + n).toString('utf8');
  const count = d.readUInt16BE(4 + n);
  if (d.length !== 6 + n + 2 * count) return null;
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(d.readUInt16BE(6 + n + 2 * i));
  return { name, requests };
}
