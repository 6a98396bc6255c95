/**
 * One utility service of the guest OS whose driver talks to a user-space daemon through a uapi device node
 * (`/dev/vmbus/hv_fcopy`, `hv_vss`): the driver on each channel, the node (outliving channel re-opens, so an
 * attached daemon stays attached), our daemon in-process (like systemd starting hv-fcopy-daemon when the
 * node appears) and/or a uapi socket bridge where an outside daemon attaches (ours standalone, or Debian's
 * through native/hvshim).
 */
import type { UapiFile } from '../bridges/uapi/file.ts';
import { UapiSocketBridge } from '../bridges/uapi/server.ts';
import { HvError } from '../protocol/errors.ts';
import type { ChannelHandler, ChannelIo } from '../vmbus/channel-io.ts';
import { UapiDevNode } from './devnode.ts';

/** What such a driver offers the node. */
export interface UapiDriver extends ChannelHandler {
  /** @throws HvError `HV_ERR_INVALID_ARGUMENT` to fail the daemon's write (EINVAL). */
  onDaemonMessage(msg: Uint8Array): void;
  onDaemonRelease(): void;
}

export interface GuestUapiServiceOptions<D extends UapiDriver> {
  /** Device node path, e.g. `/dev/vmbus/hv_fcopy`. */
  path: string;
  /** Builds the driver for a channel; it reaches the daemon through `toDaemon`. */
  driver(ch: ChannelIo, toDaemon: (msg: Uint8Array) => boolean): D;
  /** Our daemon's loop on an open node (resolves when the node closes), or null to leave the node free. */
  daemon: ((file: UapiFile) => Promise<void>) | null;
  /** Listen here for outside daemons (a filesystem path), or null. */
  bridgeSocket: string | null;
  log?(msg: string): void;
}

export class GuestUapiService<D extends UapiDriver> {
  readonly node: UapiDevNode;
  readonly #o: GuestUapiServiceOptions<D>;
  #driver: D | null = null;
  #bridge: UapiSocketBridge | null = null;
  #stopped = false;
  /** A registration written before any channel existed, handed to the first driver. */
  #early: Uint8Array | null = null;

  constructor(o: GuestUapiServiceOptions<D>) {
    this.#o = o;
    this.node = new UapiDevNode(o.path, {
      onWrite: (m) => {
        if (this.#driver) this.#driver.onDaemonMessage(m);
        else if (!this.#early) this.#early = m.slice();
        else throw new HvError('HV_ERR_INVALID_ARGUMENT', `no channel behind ${o.path} (EINVAL)`);
      },
      onRelease: () => {
        this.#early = null;
        this.#driver?.onDaemonRelease();
      },
    });
  }

  /** The driver of the current channel, or null. */
  get driver(): D | null {
    return this.#driver;
  }

  /** Starts the bridge, if any. @throws HvError `HV_ERR_IO` when its socket cannot be created. */
  async start(): Promise<void> {
    if (!this.#o.bridgeSocket) return;
    this.#bridge = await UapiSocketBridge.listen(this.#o.bridgeSocket, (p) => {
      if (p !== this.node.path) throw new HvError('HV_ERR_NOT_FOUND', `no device ${p}`);
      return this.node.open();
    });
  }

  /** The driver for a newly opened channel; our daemon (if configured) opens the node now. */
  attach(ch: ChannelIo): D {
    const d = this.#o.driver(ch, (m) => this.node.send(m));
    const had = this.#driver !== null;
    this.#driver = d;
    const early = this.#early;
    this.#early = null;
    // A daemon registered with an earlier channel registers again with this one by re-opening; one that
    // attached before any channel existed has its registration handed over.
    if (had && this.node.isOpen) this.node.hangUp();
    else if (early && this.node.isOpen) d.onDaemonMessage(early);
    const run = this.#o.daemon;
    if (run && !this.#stopped && !this.node.isOpen) {
      void run(this.node.open()).catch((e: unknown) =>
        this.#o.log?.(`${this.#o.path}: ${(e as Error).message}`),
      );
    }
    return d;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.node.hangUp();
    await this.#bridge?.close();
  }
}
