/**
 * An open uapi message device as its user (a daemon) sees it: the semantics of Linux's hv_utils_transport
 * char devices `/dev/vmbus/hv_kvp`, `hv_vss`, `hv_fcopy` (drivers/hv/hv_utils_transport.c): one whole
 * message per read, one message per write, a single opener. Implemented in-process by the guest kernel's
 * device nodes and over a Unix socket by {@link connectUapi}.
 */
export interface UapiFile {
  /** Resolves with the next whole message from the kernel; rejects (HV_ERR_CHANNEL_CLOSED) once closed. */
  read(): Promise<Uint8Array>;
  /**
   * Hands one message to the kernel. The bytes are copied before returning.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` when the kernel rejects it (EINVAL), `HV_ERR_CHANNEL_CLOSED` after close.
   */
  write(msg: Uint8Array): void;
  /**
   * In-process files only (a daemon running in the guest kernel's thread): from now on each kernel message is
   * handed to `onMessage` synchronously, as the kernel sends it, instead of through `read()` — the view is
   * valid only during the call, and a reply written from inside it reaches the driver at once. `onClose`
   * runs once when the file closes. Absent on files behind a socket.
   */
  listen?(onMessage: (msg: Uint8Array) => void, onClose: () => void): void;
  /** Releases the device (the kernel resets the service's daemon state, like the last close of the node). */
  close(): void;
  readonly closed: boolean;
}

/** Opens a device node by its path (`/dev/vmbus/hv_kvp`); throws HvError `HV_ERR_INVALID_STATE` (EBUSY) or `HV_ERR_NOT_FOUND`. */
export type UapiOpener = (devicePath: string) => UapiFile;
