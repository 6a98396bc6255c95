/**
 * The error types every layer throws. A stable `code` (`HV_ERR_*`) is the contract; messages may change.
 * `instanceof` works across duplicate copies of the module through a `Symbol.for` brand.
 */

const BRAND = Symbol.for('hvis.error');

/** Stable error codes. Callers match on these, never on messages. */
export type HvErrorCode =
  | 'HV_ERR_PROTOCOL' // malformed bytes from the peer: that channel is closed
  | 'HV_ERR_INVALID_ARGUMENT' // a user's or caller's wrong argument
  | 'HV_ERR_NOT_FOUND' // a named object (VM, file, key) does not exist
  | 'HV_ERR_ALREADY_EXISTS'
  | 'HV_ERR_INVALID_STATE' // operation not allowed in the object's current state
  | 'HV_ERR_TIMEOUT'
  | 'HV_ERR_UNSUPPORTED' // version or feature not offered by the peer
  | 'HV_ERR_CHANNEL_CLOSED'
  | 'HV_ERR_RING_FULL'
  | 'HV_ERR_IO'
  | 'HV_ERR_CORRUPT' // an on-disk structure failed its checks
  | 'HV_ERR_INTERNAL';

/** Base class of every error hvis throws on purpose. */
export class HvError extends Error {
  readonly code: HvErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: HvErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'HvError';
    this.code = code;
    this.details = details;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static override [Symbol.hasInstance](x: unknown): boolean {
    return typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[BRAND] === true;
  }

  /** Plain object for postMessage/JSON: structured clone drops `code` on Error subclasses. */
  toJSON(): SerializedHvError {
    return { name: this.name, code: this.code, message: this.message, details: this.details ?? {} };
  }

  /** Rebuilds an error serialized by {@link HvError.toJSON}. */
  static fromJSON(s: SerializedHvError): HvError {
    const e =
      s.code === 'HV_ERR_PROTOCOL'
        ? new ProtocolError(s.message, s.details as unknown as ProtocolErrorContext)
        : new HvError(s.code, s.message, s.details);
    return e;
  }
}

export interface SerializedHvError {
  name: string;
  code: HvErrorCode;
  message: string;
  details: Record<string, unknown>;
}

/** Where in the peer's bytes a decode failed. */
export interface ProtocolErrorContext {
  /** Channel relid, or -1 for the VMBus control path / unknown. */
  channel?: number;
  /** Byte offset inside the structure being decoded. */
  offset?: number;
  /** Name of the structure, e.g. `vmbus_channel_offer_channel`. */
  structure: string;
}

/** Malformed input from the other side of the wire. The channel it came from is closed or reset. */
export class ProtocolError extends HvError {
  readonly channel: number;
  readonly offset: number;
  readonly structure: string;

  constructor(message: string, ctx: ProtocolErrorContext) {
    super('HV_ERR_PROTOCOL', message, { ...ctx });
    this.name = 'ProtocolError';
    this.channel = ctx.channel ?? -1;
    this.offset = ctx.offset ?? 0;
    this.structure = ctx.structure;
  }
}

/** True for any hvis error with the given code. */
export function isHvError(x: unknown, code?: HvErrorCode): x is HvError {
  return x instanceof HvError && (code === undefined || x.code === code);
}
