/**
 * The guest side of the uapi socket bridge: a Unix stream socket where out-of-process daemons (Debian's
 * real ones through native/hvshim, or ours with {@link connectUapi}) attach to the guest kernel's device
 * nodes. Per connection: HELLO names the device; it is opened (EBUSY → connection closed); every frame
 * in is one write(), every kernel message is one frame out; closing the socket releases the device.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { HvError } from '../../protocol/errors.ts';
import type { UapiFile, UapiOpener } from './file.ts';
import { encodeFrame, FrameReader, parseHello } from './framing.ts';

export interface UapiBridgeEvents {
  /** A daemon attached (HELLO accepted, device opened). */
  onAttach?(device: string, pid: number): void;
  /** A connection ended or was refused, with the reason. */
  onDetach?(device: string | null, reason: string): void;
}

/** A listening bridge. */
export class UapiSocketBridge {
  readonly path: string;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  private constructor(path: string, server: Server) {
    this.path = path;
    this.#server = server;
  }

  /**
   * Listens on `path` (a stale socket file is replaced).
   * @throws HvError `HV_ERR_IO` when the socket cannot be created.
   */
  static async listen(path: string, open: UapiOpener, ev: UapiBridgeEvents = {}): Promise<UapiSocketBridge> {
    rmSync(path, { force: true });
    const server = createServer();
    const bridge = new UapiSocketBridge(path, server);
    server.on('connection', (s) => bridge.#serve(s, open, ev));
    await new Promise<void>((res, rej) => {
      server.once('error', (e) => rej(new HvError('HV_ERR_IO', `cannot listen on ${path}: ${e.message}`)));
      server.listen(path, () => res());
    });
    return bridge;
  }

  #serve(sock: Socket, open: UapiOpener, ev: UapiBridgeEvents): void {
    this.#sockets.add(sock);
    const reader = new FrameReader();
    let file: UapiFile | null = null;
    let device: string | null = null;
    let why = 'daemon closed the device';
    const end = (reason: string) => {
      why = reason;
      sock.destroy();
    };
    sock.on('close', () => {
      this.#sockets.delete(sock);
      file?.close();
      ev.onDetach?.(device, why);
    });
    sock.on('error', () => {});
    const pump = async (f: UapiFile) => {
      while (!f.closed && !sock.destroyed) {
        let m: Uint8Array;
        try {
          m = await f.read();
        } catch {
          break;
        }
        sock.write(encodeFrame(m));
      }
      if (!sock.destroyed) end('kernel closed the device');
    };
    const onFrame = (fr: Uint8Array) => {
      if (!file) {
        const h = parseHello(fr);
        device = h.device;
        file = open(h.device);
        ev.onAttach?.(h.device, h.pid);
        void pump(file);
        return;
      }
      try {
        file.write(fr); // copies (UapiFile contract), so the frame may be a view into the socket's chunk
      } catch (e) {
        // A rejected write is EINVAL to the writer; the shim has already returned, so drop the message.
        ev.onDetach?.(device, `write rejected: ${(e as Error).message}`);
      }
    };
    sock.on('data', (chunk: Buffer) => {
      try {
        reader.feed(chunk, onFrame);
      } catch (e) {
        end((e as Error).message);
      }
    });
  }

  /** Stops listening and drops every attached daemon (they see EBADF on their next read). */
  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((res) => this.#server.close(() => res()));
    rmSync(this.path, { force: true });
  }
}
