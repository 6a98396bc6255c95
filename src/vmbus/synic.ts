/**
 * SynIC emulation: what VMBus needs of the Hyper-V synthetic interrupt controller, for one VM.
 *
 * - Messages: 256-byte `struct hv_message` slots (16-byte header: message_type u32 = 1 for VMBus,
 *   payload_size u8, flags u8 bit0 message-pending, port/sender u64; 240-byte payload). Guest→host messages
 *   are HvPostMessage on a connection id (1, or 4 for INITIATE_CONTACT from 5.0): a connection id the host
 *   does not listen on returns HV_STATUS_INVALID_CONNECTION_ID (Linux falls back to a lower version on it);
 *   a full queue returns HV_STATUS_INSUFFICIENT_BUFFERS and the sender is told when a slot frees
 *   (`onSlotFree`), as the message-pending/EOM handshake does on real SynIC.
 * - Events: host→guest sets bit `child_relid` of the guest's 2048-bit SINT 2 event-flags page; guest→host
 *   HvSignalEvent(connection id) sets flag `connection_id mod 2048` (the server allocates connection ids
 *   distinct modulo 2048). Bits coalesce until the receiver scans them, as on hardware.
 * - The "interrupt": the receiver's handler runs when messages or events are pending.
 *
 * Two transports implement {@link SynicPort}: {@link DeterministicSynic} (both sides in one thread, nothing
 * happens until `step()`/`run()`) here, and the cross-thread SharedArrayBuffer one in synic-shared.ts.
 * Sources: Linux include/asm-generic/hyperv-tlfs.h (hv_message), drivers/hv/connection.c (vmbus_post_msg,
 * vmbus_set_event), vmbus_drv.c (vmbus_chan_sched); OpenVMM vm/hv1/hvdef.
 */
import {
  HV_MESSAGE_PAYLOAD_BYTE_COUNT,
  HV_STATUS_INSUFFICIENT_BUFFERS,
  HV_STATUS_INVALID_CONNECTION_ID,
  HV_STATUS_SUCCESS,
  MAX_CHANNEL_RELIDS,
} from '../protocol/vmbus/constants.ts';

/** Callbacks of one side. They run on that side's thread; they must not throw (exceptions are swallowed). */
export interface SynicHandler {
  /** A VMBus message (`payload` valid only during the call). `connectionId` is the port it was posted to. */
  onMessage(connectionId: number, payload: Uint8Array): void;
  /** Event flag `index` (0..2047) was set: host side = connection id mod 2048, guest side = relid. */
  onEvent(index: number): void;
  /** A post that returned HV_STATUS_INSUFFICIENT_BUFFERS may now be retried. */
  onSlotFree?(): void;
}

/** One side's view of the SynIC. */
export interface SynicPort {
  /**
   * Posts one message (≤ 240 bytes) to the other side. Host→guest posts ignore `connectionId` checks.
   * @returns HV_STATUS_SUCCESS, HV_STATUS_INVALID_CONNECTION_ID (guest→host on an id the host does not
   *   listen on) or HV_STATUS_INSUFFICIENT_BUFFERS (queue full; wait for `onSlotFree`).
   */
  postMessage(connectionId: number, payload: Uint8Array): number;
  /** Sets event flag `index mod 2048` on the other side and raises its interrupt. */
  signalEvent(index: number): void;
  /** Installs this side's callbacks (replaces earlier ones). */
  listen(handler: SynicHandler): void;
  /** Host side only: the message connection ids the host listens on (HvPostMessage ports). */
  setConnectionIds(ids: readonly number[]): void;
  /**
   * True when the peer runs on another thread, so a ring reader may busy-poll for the peer's next packet
   * (RingChannel.busyPoll); false or absent when both sides share one thread and spinning would stall it.
   */
  readonly peerRunsConcurrently?: boolean;
}

/** Guest→host connection ids a host listens on are small numbers; one u32 mask covers 0..31. */
export function connectionIdMask(ids: readonly number[]): number {
  let m = 0;
  for (const id of ids) if (id >= 0 && id < 32) m |= 1 << id;
  return m;
}

/** Messages a direction queues before HV_STATUS_INSUFFICIENT_BUFFERS. */
export const SYNIC_DEFAULT_QUEUE_SLOTS = 64;

type Side = 0 | 1; // 0 = host receives, 1 = guest receives

interface Delivery {
  to: Side;
  /** -1 = event scan. */
  connectionId: number;
  payload: Uint8Array | null;
}

/**
 * Host and guest in one thread. Posting and signalling only queue; {@link step} delivers the oldest
 * deliverable item (a message, or one scan of a side's event flags), {@link run} until nothing is left, so a
 * test is reproducible. {@link freeze} stops deliveries to one side (a peer that stops answering).
 */
export class DeterministicSynic {
  readonly host: SynicPort;
  readonly guest: SynicPort;
  readonly #queue: Delivery[] = [];
  readonly #handlers: [SynicHandler | null, SynicHandler | null] = [null, null];
  readonly #flags = [new Uint8Array(MAX_CHANNEL_RELIDS), new Uint8Array(MAX_CHANNEL_RELIDS)];
  readonly #eventQueued = [false, false];
  readonly #pending = [0, 0];
  readonly #refused = [false, false];
  readonly #frozen = [false, false];
  readonly #slots: number;
  #connMask = 0;

  constructor(queueSlots = SYNIC_DEFAULT_QUEUE_SLOTS) {
    this.#slots = queueSlots;
    this.host = this.#port(1);
    this.guest = this.#port(0);
  }

  /** Stops (true) or resumes deliveries to `side`; its queued items stay queued. */
  freeze(side: 'host' | 'guest', frozen = true): void {
    this.#frozen[side === 'host' ? 0 : 1] = frozen;
  }

  /** Items waiting (messages and event scans). */
  get pending(): number {
    return this.#queue.length;
  }

  /** Delivers one item. @returns false when nothing deliverable is queued. */
  step(): boolean {
    const i = this.#queue.findIndex((d) => !this.#frozen[d.to]);
    if (i < 0) return false;
    const d = this.#queue.splice(i, 1)[0]!;
    const h = this.#handlers[d.to];
    if (d.payload === null) {
      this.#eventQueued[d.to] = false;
      const flags = this.#flags[d.to]!;
      for (let b = 0; b < flags.length; b++) {
        if (flags[b] === 0) continue;
        flags[b] = 0;
        safe(() => h?.onEvent(b));
      }
      return true;
    }
    this.#pending[d.to]!--;
    safe(() => h?.onMessage(d.connectionId, d.payload!));
    const sender = (1 - d.to) as Side;
    if (this.#refused[sender]) {
      this.#refused[sender] = false;
      safe(() => this.#handlers[sender]?.onSlotFree?.());
    }
    return true;
  }

  /** Steps until nothing deliverable is left or `maxSteps` ran. @returns the steps taken. */
  run(maxSteps = 1_000_000): number {
    let n = 0;
    while (n < maxSteps && this.step()) n++;
    return n;
  }

  /** The port of the side that receives deliveries addressed to `1 - to` and posts to `to`. */
  #port(to: Side): SynicPort {
    const from = (1 - to) as Side;
    return {
      postMessage: (connectionId, payload) => {
        if (payload.length > HV_MESSAGE_PAYLOAD_BYTE_COUNT)
          throw new RangeError('SynIC message payload exceeds 240 bytes');
        if (
          to === 0 &&
          (connectionId < 0 || connectionId > 31 || (this.#connMask & (1 << connectionId)) === 0)
        ) {
          return HV_STATUS_INVALID_CONNECTION_ID;
        }
        if (this.#pending[to]! >= this.#slots) {
          this.#refused[from] = true;
          return HV_STATUS_INSUFFICIENT_BUFFERS;
        }
        this.#pending[to]!++;
        this.#queue.push({ to, connectionId, payload: payload.slice() });
        return HV_STATUS_SUCCESS;
      },
      signalEvent: (index) => {
        this.#flags[to]![index & (MAX_CHANNEL_RELIDS - 1)] = 1;
        if (!this.#eventQueued[to]) {
          this.#eventQueued[to] = true;
          this.#queue.push({ to, connectionId: -1, payload: null });
        }
      },
      listen: (handler) => {
        this.#handlers[from] = handler;
      },
      setConnectionIds: (ids) => {
        this.#connMask = connectionIdMask(ids);
      },
    };
  }
}

function safe(f: () => void): void {
  try {
    f();
  } catch {
    // A handler bug must not stop the other side's deliveries; server and client catch their own errors.
  }
}
