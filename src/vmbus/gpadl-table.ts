/**
 * Host-side GPADL bookkeeping for one VM: GPADL_HEADER/GPADL_BODY accumulation, validation and the table
 * of established GPADLs per channel. Rules from OpenVMM vmbus_server channels.rs (vmbus-core-ics.md §4.2):
 * an id already in use or in progress is refused (GPADL_CREATED status 0x8000FFFF); the host answers once,
 * after `range_buflen` bytes of range data arrived; ranges must be well formed. Handles are chosen by the
 * guest and scoped to the channel (child_relid) they were created on.
 */

import { ProtocolError } from '../protocol/errors.ts';
import type { GpadlBody, GpadlHeader } from '../protocol/vmbus/channel-messages.ts';
import { parseGpaRanges } from '../protocol/vmbus/gpadl-messages.ts';
import type { GpaRange } from '../protocol/vmbus/packet.ts';

/** An established GPADL. */
export interface Gpadl {
  id: number;
  relid: number;
  ranges: GpaRange[];
  /** Held by an open channel's rings: teardown waits for CLOSECHANNEL. */
  inUse: boolean;
  /** GPADL_TEARDOWN arrived while in use: GPADL_TORNDOWN goes out when released. */
  teardownPending: boolean;
}

interface Pending {
  relid: number;
  rangecount: number;
  buf: Uint8Array;
  filled: number;
}

/** Result of feeding a header or body: nothing yet, done (ok or failed), or not for any GPADL in progress. */
export type GpadlProgress =
  | { kind: 'more' }
  | { kind: 'created'; gpadl: Gpadl }
  | { kind: 'failed'; relid: number; id: number; reason: string }
  | { kind: 'unknown' };

/** In-progress GPADLs one VM may have at once (bounds host memory a guest can pin with headers). */
export const MAX_PENDING_GPADLS = 64;

export class GpadlTable {
  readonly #pending = new Map<number, Pending>();
  /** relid → (id → GPADL). */
  readonly #byChannel = new Map<number, Map<number, Gpadl>>();

  /** Handles GPADL_HEADER (the channel is known to the caller). */
  header(m: GpadlHeader): GpadlProgress {
    const fail = (reason: string): GpadlProgress => ({
      kind: 'failed',
      relid: m.childRelid,
      id: m.gpadl,
      reason,
    });
    if (this.#pending.has(m.gpadl) || this.get(m.childRelid, m.gpadl))
      return fail(`GPADL ${m.gpadl} already in use`);
    if (this.#pending.size >= MAX_PENDING_GPADLS) return fail('too many GPADLs in progress');
    if (m.rangecount === 0 || m.rangeBuflen < 8) return fail('GPADL without ranges');
    if (m.data.length > m.rangeBuflen) return fail('GPADL header carries more than range_buflen bytes');
    const p: Pending = {
      relid: m.childRelid,
      rangecount: m.rangecount,
      buf: new Uint8Array(m.rangeBuflen),
      filled: 0,
    };
    p.buf.set(m.data);
    p.filled = m.data.length;
    this.#pending.set(m.gpadl, p);
    return this.#maybeDone(m.gpadl, p);
  }

  /** Handles GPADL_BODY. */
  body(m: GpadlBody): GpadlProgress {
    const p = this.#pending.get(m.gpadl);
    if (!p) return { kind: 'unknown' };
    if (p.filled + m.data.length > p.buf.length) {
      this.#pending.delete(m.gpadl);
      return { kind: 'failed', relid: p.relid, id: m.gpadl, reason: 'GPADL bodies exceed range_buflen' };
    }
    p.buf.set(m.data, p.filled);
    p.filled += m.data.length;
    return this.#maybeDone(m.gpadl, p);
  }

  get(relid: number, id: number): Gpadl | undefined {
    return this.#byChannel.get(relid)?.get(id);
  }

  /** True when `id` is being assembled for `relid`. */
  isPending(relid: number, id: number): boolean {
    return this.#pending.get(id)?.relid === relid;
  }

  /** Forgets GPADL `id` of `relid` (established or in progress). */
  remove(relid: number, id: number): void {
    if (this.isPending(relid, id)) this.#pending.delete(id);
    this.#byChannel.get(relid)?.delete(id);
  }

  /** Forgets every GPADL of `relid` (channel gone). */
  removeChannel(relid: number): void {
    this.#byChannel.delete(relid);
    for (const [id, p] of this.#pending) if (p.relid === relid) this.#pending.delete(id);
  }

  /** Forgets everything (UNLOAD / reconnect). */
  clear(): void {
    this.#pending.clear();
    this.#byChannel.clear();
  }

  /** Established GPADLs of `relid`. */
  ofChannel(relid: number): Gpadl[] {
    return [...(this.#byChannel.get(relid)?.values() ?? [])];
  }

  #maybeDone(id: number, p: Pending): GpadlProgress {
    if (p.filled < p.buf.length) return { kind: 'more' };
    this.#pending.delete(id);
    let ranges: GpaRange[];
    try {
      ranges = parseGpaRanges(p.buf, p.rangecount, p.relid);
    } catch (e) {
      const reason = e instanceof ProtocolError ? e.message : String(e);
      return { kind: 'failed', relid: p.relid, id, reason };
    }
    const g: Gpadl = { id, relid: p.relid, ranges, inUse: false, teardownPending: false };
    let m = this.#byChannel.get(p.relid);
    if (!m) {
      m = new Map();
      this.#byChannel.set(p.relid, m);
    }
    m.set(id, g);
    return { kind: 'created', gpadl: g };
  }
}
