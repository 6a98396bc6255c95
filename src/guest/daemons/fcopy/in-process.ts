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
  if (file.listen) {
    // In the kernel's thread: answer each request inside the driver's call, so a fragment costs no
    // event-loop turn (the driver and the host can then busy-poll through a whole copy).
    await new Promise<void>((resolve) => {
      let first = true;
      const answer = (status: number) => {
        try {
          file.write(encodeFcopyInt(status, reply));
        } catch {
          file.close();
        }
      };
      file.listen?.((msg) => {
        if (first) {
          first = false;
          if (msg.length === FCOPY_INT_MSG) return;
        }
        answer(daemon.handle(msg));
      }, resolve);
      answer(FCOPY_CURRENT_VERSION);
    });
    daemon.close();
    return;
  }
  try {
    file.write(encodeFcopyInt(FCOPY_CURRENT_VERSION, reply));
    let first = true;
    for (;;) {
      const msg = await file.read();
      if (first) {
        first = false;
        // The kernel's version answer (4 bytes) comes first.
        if (msg.length === FCOPY_INT_MSG) continue;
      }
      file.write(encodeFcopyInt(daemon.handle(msg), reply));
    }
  } catch {
    // closed
  } finally {
    daemon.close();
  }
}
