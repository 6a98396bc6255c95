/**
 * Shutdown IC, guest side: decides from `flags` what to do, replies with the status first, then calls the
 * injected OS hook (which the guest model uses to really stop its worker).
 * - linux (hv_util.c): needs the full 2060-byte body (shorter: no reply); 0/1 power off, 2/3 reboot, 4/5
 *   hibernate if `canHibernate` (else HV_E_FAIL); any other value HV_E_FAIL.
 * - freebsd (vmbus_shutdown.c): 0/1 power off; anything else HV_E_FAIL.
 * - openvmm (hyperv_ic_guest/src/shutdown.rs): restart bit → reboot, else hibernate bit → hibernate, else
 *   power off; HV_E_FAIL while one is already in progress.
 */
import { HV_E_FAIL, HV_S_OK, ICMSGTYPE_SHUTDOWN } from '../../protocol/ic/icmsg.ts';
import {
  decodeShutdownMsgData,
  SHUTDOWN_FLAG_FORCE,
  SHUTDOWN_FLAG_HIBERNATE,
  SHUTDOWN_FLAG_RESTART,
  SHUTDOWN_MIN_BODY,
  SHUTDOWN_MSG_DATA,
  type ShutdownMsgData,
} from '../../protocol/ic/shutdown.ts';
import type { ChannelHandler, ChannelIo, IncomingPacket } from '../../vmbus/channel-io.ts';
import { guestIcVersions, IcGuest, type IcGuestFlavor, type IcSelection } from '../ic/guest.ts';

export type ShutdownKind = 'poweroff' | 'reboot' | 'hibernate';

export interface ShutdownGuestOptions {
  flavor?: IcGuestFlavor;
  /** Whether this guest can hibernate (Linux `hv_is_hibernation_supported()`); default false. */
  canHibernate?: boolean;
  /** The OS action, called after the reply was sent. */
  onShutdown(kind: ShutdownKind, request: ShutdownMsgData): void;
}

function decide(flavor: IcGuestFlavor, flags: number, canHibernate: boolean): ShutdownKind | null {
  if (flavor === 'freebsd') return flags === 0 || flags === 1 ? 'poweroff' : null;
  if (flavor === 'openvmm') {
    if (flags & SHUTDOWN_FLAG_RESTART) return 'reboot';
    if (flags & SHUTDOWN_FLAG_HIBERNATE) return canHibernate ? 'hibernate' : null;
    return 'poweroff';
  }
  switch (flags & ~SHUTDOWN_FLAG_FORCE) {
    case 0:
      return 'poweroff';
    case SHUTDOWN_FLAG_RESTART:
      return 'reboot';
    case SHUTDOWN_FLAG_HIBERNATE:
      return canHibernate ? 'hibernate' : null;
    default:
      return null;
  }
}

/** The shutdown driver on one guest channel. */
export class ShutdownGuest implements ChannelHandler {
  readonly #ic: IcGuest;
  #inProgress: ShutdownKind | null = null;

  constructor(ch: ChannelIo, opts: ShutdownGuestOptions) {
    const flavor = opts.flavor ?? 'linux';
    this.#ic = new IcGuest(ch, {
      flavor,
      icmsgtype: ICMSGTYPE_SHUTDOWN,
      versions: guestIcVersions(flavor, 'shutdown'),
      onRequest: (msg, reply) => {
        const need = flavor === 'linux' ? SHUTDOWN_MSG_DATA.size : SHUTDOWN_MIN_BODY;
        if (msg.body.length < need) {
          reply.drop();
          return;
        }
        const req = decodeShutdownMsgData(msg.body);
        const kind =
          flavor === 'openvmm' && this.#inProgress
            ? null
            : decide(flavor, req.flags, opts.canHibernate ?? false);
        reply.setStatus(kind ? HV_S_OK : HV_E_FAIL);
        if (!kind) return;
        const first = this.#inProgress === null;
        this.#inProgress = kind;
        // The request body lives in the reused receive buffer: copy what the hook may keep.
        const copy = { ...req, display_message: req.display_message.slice() };
        if (first) reply.after(() => opts.onShutdown(kind, copy));
      },
    });
  }

  get negotiated(): IcSelection | null {
    return this.#ic.negotiated;
  }

  /** The action accepted so far, null when none. */
  get inProgress(): ShutdownKind | null {
    return this.#inProgress;
  }

  onPacket(pkt: IncomingPacket): void {
    this.#ic.onPacket(pkt);
  }

  onClose(reason?: Error): void {
    this.#ic.onClose(reason);
  }
}
