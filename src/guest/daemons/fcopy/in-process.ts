/**
 * Runs our fcopy daemon inside the guest worker, holding the driver's `/dev/vmbus/hv_fcopy` node directly
 * (no socket): it registers with FCOPY_CURRENT_VERSION, skips the kernel's 4-byte version answer, and
 * answers each request synchronously with its status.
 */
import type { UapiFile } from '../../../devices/fcopy/guest.ts';
import { encodeFcopyInt, FCOPY_CURRENT_VERSION, FCOPY_INT_MSG } from '../../../protocol/uapi/fcopy.ts';
import { FcopyDaemon, type FcopyDaemonOptions } from './daemon.ts';

/** What the daemon needs of the driver: its device node. */
export interface FcopyNode {
  open(reader: (msg: Uint8Array) => void): UapiFile;
}

/** A running in-process daemon; `stop` closes the node (a waiting request fails) and drops any partial copy. */
export interface RunningFcopyDaemon {
  readonly daemon: FcopyDaemon;
  stop(): void;
}

/**
 * Opens the node and serves it.
 * @throws HvError when the node is busy or the channel is closed.
 */
export function runFcopyDaemonInProcess(node: FcopyNode, opts: FcopyDaemonOptions = {}): RunningFcopyDaemon {
  const daemon = new FcopyDaemon(opts);
  const reply = new Uint8Array(FCOPY_INT_MSG);
  let registered = false;
  let file: UapiFile | null = null;
  file = node.open((msg) => {
    if (!registered) {
      // The kernel's version answer (4 bytes) comes first.
      registered = true;
      if (msg.length === FCOPY_INT_MSG) return;
    }
    const status = daemon.handle(msg);
    file?.write(encodeFcopyInt(status, reply));
  });
  file.write(encodeFcopyInt(FCOPY_CURRENT_VERSION, reply));
  return {
    daemon,
    stop: () => {
      file?.close();
      file = null;
      daemon.close();
    },
  };
}
