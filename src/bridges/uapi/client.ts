/**
 * The daemon side of the uapi socket bridge, for daemons written in Node (ours, run as a standalone
 * process): connects, sends HELLO, and exposes the device as a {@link UapiFile}.
 */
import { connect } from 'node:net';
import { HvError } from '../../protocol/errors.ts';
import type { UapiFile } from './file.ts';
import { encodeFrame, FrameReader } from './framing.ts';

/**
 * Opens `devicePath` through the bridge listening at `socketPath`.
 * @throws HvError `HV_ERR_IO` when the socket cannot be reached.
 */
export async function connectUapi(socketPath: string, devicePath: string): Promise<UapiFile> {
  const sock = connect(socketPath);
  await new Promise<void>((res, rej) => {
    sock.once('connect', () => res());
    sock.once('error', (e) =>
      rej(new HvError('HV_ERR_IO', `cannot open ${devicePath} via ${socketPath}: ${e.message}`)),
    );
  });
  sock.setNoDelay?.(true);
  const reader = new FrameReader();
  const queue: Uint8Array[] = [];
  let waiter: { res(m: Uint8Array): void; rej(e: Error): void } | null = null;
  let closed = false;
  const closedErr = () => new HvError('HV_ERR_CHANNEL_CLOSED', `${devicePath} was closed`);
  const shut = () => {
    closed = true;
    waiter?.rej(closedErr());
    waiter = null;
  };
  const onFrame = (view: Uint8Array) => {
    const f = view.slice(); // the daemon keeps it past this call (and answers in place)
    if (waiter) {
      const w = waiter;
      waiter = null;
      w.res(f);
    } else queue.push(f);
  };
  sock.on('data', (c: Buffer) => {
    try {
      reader.feed(c, onFrame);
    } catch {
      sock.destroy();
    }
  });
  sock.on('close', shut);
  sock.on('error', () => {});
  sock.write(encodeFrame(Buffer.from(`${devicePath}\0${process.pid}`)));
  return {
    get closed() {
      return closed;
    },
    read() {
      const m = queue.shift();
      if (m) return Promise.resolve(m);
      if (closed) return Promise.reject(closedErr());
      return new Promise((res, rej) => {
        waiter = { res, rej };
      });
    },
    write(msg) {
      if (closed) throw closedErr();
      sock.write(encodeFrame(msg));
    },
    close() {
      sock.destroy();
      shut();
    },
  };
}
