/**
 * Serves our fcopy daemon on an open `/dev/vmbus/hv_fcopy` (a {@link UapiFile}: the guest kernel's node
 * in-process, or the uapi socket bridge from a standalone process), as `hv_fcopy_daemon`'s main loop:
 * write FCOPY_CURRENT_VERSION, read the kernel's 4-byte version answer, then one 4-byte status per request.
 */
import type { UapiFile } from '../../../bridges/uapi/file.ts';
import { encodeFcopyInt, FCOPY_CURRENT_VERSION, FCOPY_INT_MSG } from '../../../protocol/uapi/fcopy.ts';
import { FcopyDaemon, type FcopyDaemonOptions } from './daemon.ts';

/**
 * Registers and answers requests until the file closes; then drops any partial copy.
 * @returns when the device closed (the kernel went away or `file.close()` was called).
 */
export async function serveFcopy(file: UapiFile, opts: FcopyDaemonOptions = {}): Promise<void> {
  const daemon = new FcopyDaemon(opts);
  const reply = new Uint8Array(FCOPY_INT_MSG);
  let first = true;
  /** The status to write back for `msg`, or null for the kernel's version answer (4 bytes, first). */
  const statusFor = (msg: Uint8Array): number | null => {
    if (first) {
      first = false;
      if (msg.length === FCOPY_INT_MSG) return null;
    }
    return daemon.handle(msg);
  };
  try {
    if (file.listen) {
      // In the kernel's thread: answer each request inside the driver's call, so a fragment costs no
      // event-loop turn (the driver and the host can then busy-poll through a whole copy).
      await new Promise<void>((resolve) => {
        const answer = (status: number | null) => {
          if (status === null) return;
          try {
            file.write(encodeFcopyInt(status, reply));
          } catch {
            file.close();
          }
        };
        file.listen?.((msg) => answer(statusFor(msg)), resolve);
        answer(FCOPY_CURRENT_VERSION);
      });
      return;
    }
    file.write(encodeFcopyInt(FCOPY_CURRENT_VERSION, reply));
    for (;;) {
      const status = statusFor(await file.read());
      if (status !== null) file.write(encodeFcopyInt(status, reply));
    }
  } catch {
    // closed
  } finally {
    daemon.close();
  }
}
