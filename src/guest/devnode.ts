/**
 * A guest kernel's uapi message device (`/dev/vmbus/hv_kvp`, `hv_vss`, `hv_fcopy`), with the semantics of
 * Linux drivers/hv/hv_utils_transport.c in char-device mode: a single opener (a second open is EBUSY),
 * one pending kernel→daemon message at a time (a second send fails), read returns one whole message,
 * write hands one message to the driver, and the last close resets the driver's daemon state (`on_reset`).
 */
import type { UapiFile } from '../bridges/uapi/file.ts';
import { HvError } from '../protocol/errors.ts';

/** What the driver behind a node implements. */
export interface DevNodeDriver {
  /**
   * One message written by the daemon. Throw HvError `HV_ERR_INVALID_ARGUMENT` to fail the write (EINVAL).
   * `msg` is the writer's own buffer, valid during this call only: copy what is kept (copy_from_user).
   */
  onWrite(msg: Uint8Array): void;
  /** The daemon closed the node (or died): forget its registration. */
  onRelease?(): void;
  /** A daemon opened the node. */
  onOpen?(): void;
}

export class UapiDevNode {
  readonly path: string;
  readonly #driver: DevNodeDriver;
  #file: NodeFile | null = null;

  constructor(path: string, driver: DevNodeDriver) {
    this.path = path;
    this.#driver = driver;
  }

  /** True while a daemon holds the node open. */
  get isOpen(): boolean {
    return this.#file !== null;
  }

  /**
   * Opens the node for a daemon.
   * @throws HvError `HV_ERR_INVALID_STATE` (EBUSY) while another opener holds it.
   */
  open(): UapiFile {
    if (this.#file)
      throw new HvError('HV_ERR_INVALID_STATE', `${this.path} is busy: another daemon has it open (EBUSY)`);
    const f = new NodeFile(this, this.#driver);
    this.#file = f;
    this.#driver.onOpen?.();
    return f;
  }

  /**
   * Queues one kernel→daemon message (copied).
   * @returns false when no daemon has the node open or a message is still unread (Linux -EFAULT/-EBUSY).
   */
  send(msg: Uint8Array): boolean {
    return this.#file?.deliver(msg) ?? false;
  }

  /** Drops the current opener (the kernel tore the device down); its reads reject. */
  hangUp(): void {
    this.#file?.close();
  }

  /** @internal */
  released(f: NodeFile): void {
    if (this.#file !== f) return;
    this.#file = null;
    this.#driver.onRelease?.();
  }
}

class NodeFile implements UapiFile {
  readonly #node: UapiDevNode;
  readonly #driver: DevNodeDriver;
  #pending: Uint8Array | null = null;
  #waiter: { res(m: Uint8Array): void; rej(e: Error): void } | null = null;
  #listener: { onMessage(m: Uint8Array): void; onClose(): void } | null = null;
  #closed = false;

  constructor(node: UapiDevNode, driver: DevNodeDriver) {
    this.#node = node;
    this.#driver = driver;
  }

  get closed(): boolean {
    return this.#closed;
  }

  deliver(msg: Uint8Array): boolean {
    if (this.#closed || this.#pending) return false;
    if (this.#listener) {
      this.#listener.onMessage(msg);
      return true;
    }
    const copy = msg.slice();
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.res(copy);
    } else this.#pending = copy;
    return true;
  }

  listen(onMessage: (msg: Uint8Array) => void, onClose: () => void): void {
    if (this.#closed) {
      onClose();
      return;
    }
    this.#listener = { onMessage, onClose };
    const m = this.#pending;
    this.#pending = null;
    if (m) onMessage(m);
  }

  read(): Promise<Uint8Array> {
    if (this.#pending) {
      const m = this.#pending;
      this.#pending = null;
      return Promise.resolve(m);
    }
    if (this.#closed) return Promise.reject(this.#closedError());
    if (this.#waiter)
      return Promise.reject(
        new HvError('HV_ERR_INVALID_STATE', `${this.#node.path}: a read is already waiting`),
      );
    return new Promise((res, rej) => {
      this.#waiter = { res, rej };
    });
  }

  write(msg: Uint8Array): void {
    if (this.#closed) throw this.#closedError();
    this.#driver.onWrite(msg);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = null;
    this.#waiter?.rej(this.#closedError());
    this.#waiter = null;
    const l = this.#listener;
    this.#listener = null;
    this.#node.released(this);
    l?.onClose();
  }

  #closedError(): HvError {
    return new HvError('HV_ERR_CHANNEL_CLOSED', `${this.#node.path} is closed (EBADF)`);
  }
}
