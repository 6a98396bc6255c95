/**
 * Heartbeat IC, guest side: answers each HEARTBEAT request with `seq_num + 1`, leaving the rest of the body
 * as received (Linux drivers/hv/hv_util.c `heartbeat_onchannelcallback`, FreeBSD vmbus_heartbeat.c).
 * A body shorter than 8 bytes is dropped without a reply, as Linux does.
 */
import { HEARTBEAT_MIN_BODY, incrementHeartbeatSeq } from '../../protocol/ic/heartbeat.ts';
import { ICMSGTYPE_HEARTBEAT } from '../../protocol/ic/icmsg.ts';
import type { ChannelHandler, ChannelIo, IncomingPacket } from '../../vmbus/channel-io.ts';
import { guestIcVersions, IcGuest, type IcGuestFlavor, type IcSelection } from '../ic/guest.ts';

export interface HeartbeatGuestOptions {
  /** Negotiation rules to follow (default linux). */
  flavor?: IcGuestFlavor;
}

/** The heartbeat driver on one guest channel. */
export class HeartbeatGuest implements ChannelHandler {
  readonly #ic: IcGuest;
  #beats = 0;

  constructor(ch: ChannelIo, opts: HeartbeatGuestOptions = {}) {
    const flavor = opts.flavor ?? 'linux';
    this.#ic = new IcGuest(ch, {
      flavor,
      icmsgtype: ICMSGTYPE_HEARTBEAT,
      versions: guestIcVersions(flavor, 'heartbeat'),
      onRequest: (msg, reply) => {
        if (msg.body.length < HEARTBEAT_MIN_BODY) {
          reply.drop();
          return;
        }
        incrementHeartbeatSeq(reply.body);
        this.#beats++;
      },
    });
  }

  /** Versions negotiated with the host, null before. */
  get negotiated(): IcSelection | null {
    return this.#ic.negotiated;
  }

  /** Requests answered so far. */
  get beats(): number {
    return this.#beats;
  }

  onPacket(pkt: IncomingPacket): void {
    this.#ic.onPacket(pkt);
  }

  onClose(reason?: Error): void {
    this.#ic.onClose(reason);
  }
}
