/**
 * KVP in the guest OS: the hv_kvp driver on each KVP channel, its `/dev/vmbus/hv_kvp` node, and what sits on
 * the node — our daemon in-process (like systemd starting hv-kvp-daemon when the node appears), and/or a
 * uapi socket bridge where an out-of-process daemon attaches (ours standalone, or Debian's real one via
 * native/hvshim: `hvis up --guest-agent hyperv-daemons`). The node outlives channel re-opens so an
 * attached daemon stays attached; a channel close fails the transaction in flight.
 */
import { UapiSocketBridge } from '../bridges/uapi/server.ts';
import type { IcGuestFlavor } from '../devices/ic/guest.ts';
import { KvpGuest } from '../devices/kvp/guest.ts';
import { HvError } from '../protocol/errors.ts';
import type { ChannelHandler, ChannelIo, Clock } from '../vmbus/channel-io.ts';
import { KvpDaemon } from './daemons/kvp/daemon.ts';
import { UapiDevNode } from './devnode.ts';

/** Busy-poll window after answering with our in-process daemon, µs (see attach). */
const NEXT_REQUEST_SPIN_MICROS = 100;

export interface GuestKvpOptions {
  clock: Clock;
  flavor?: IcGuestFlavor;
  /** Run our daemon in-process with this pool directory; null: leave the node to an outside daemon. */
  daemonRoot: string | null;
  /** Listen here for outside daemons (a filesystem path), or null. */
  bridgeSocket: string | null;
  log?(msg: string): void;
}

export class GuestKvpService {
  readonly node: UapiDevNode;
  readonly #o: GuestKvpOptions;
  #driver: KvpGuest | null = null;
  #daemon: KvpDaemon | null = null;
  #bridge: UapiSocketBridge | null = null;

  constructor(o: GuestKvpOptions) {
    this.#o = o;
    this.node = new UapiDevNode('/dev/vmbus/hv_kvp', {
      onWrite: (m) => {
        if (!this.#driver) throw new HvError('HV_ERR_INVALID_ARGUMENT', 'no KVP channel (EINVAL)');
        this.#driver.onDaemonMessage(m);
      },
      onRelease: () => this.#driver?.onDaemonRelease(),
    });
  }

  /** Starts the bridge and/or our daemon. Failures are logged; the node then waits for another daemon. */
  async start(): Promise<void> {
    if (this.#o.bridgeSocket) {
      this.#bridge = await UapiSocketBridge.listen(this.#o.bridgeSocket, (p) => {
        if (p !== this.node.path) throw new HvError('HV_ERR_NOT_FOUND', `no device ${p}`);
        return this.node.open();
      });
    }
    if (this.#o.daemonRoot !== null) {
      try {
        // It opens the node once a channel exists (attach), as the C daemon only runs once the node appears.
        this.#daemon = new KvpDaemon({
          root: this.#o.daemonRoot,
          ...(this.#o.log ? { log: this.#o.log } : {}),
        });
      } catch (e) {
        this.#o.log?.(`kvp daemon not started: ${(e as Error).message}`);
      }
    }
  }

  /** The driver for a newly opened KVP channel. */
  attach(ch: ChannelIo): ChannelHandler {
    const d = new KvpGuest(ch, {
      clock: this.#o.clock,
      ...(this.#o.flavor ? { flavor: this.#o.flavor } : {}),
      toDaemon: (m) => this.node.send(m),
    });
    this.#driver = d;
    // A daemon registered before this channel existed is registered with the new driver by re-opening.
    if (this.node.isOpen) this.node.hangUp();
    if (this.#daemon) {
      // Our daemon answers within this thread's turn: after each answer, poll a little for the host's next
      // request (a burst of SET/GET/ENUMERATE) rather than wait for its interrupt.
      ch.busyPoll?.(NEXT_REQUEST_SPIN_MICROS);
      const dm = this.#daemon;
      void dm
        .serve(this.node.open())
        .catch((e: unknown) => this.#o.log?.(`kvp daemon: ${(e as Error).message}`));
    }
    return d;
  }

  async stop(): Promise<void> {
    this.#daemon?.stop();
    this.node.hangUp();
    await this.#bridge?.close();
  }
}
