/**
 * How errors cross the management API: the body `{ error: { code, message, details } }` with an HTTP
 * status chosen from the code. The client rebuilds an {@link HvError} from it.
 */
import { HvError, type HvErrorCode, type SerializedHvError } from '../../protocol/errors.ts';

const STATUS: Partial<Record<HvErrorCode, number>> = {
  HV_ERR_INVALID_ARGUMENT: 400,
  HV_ERR_NOT_FOUND: 404,
  HV_ERR_ALREADY_EXISTS: 409,
  HV_ERR_INVALID_STATE: 409,
  HV_ERR_TIMEOUT: 504,
  HV_ERR_UNSUPPORTED: 501,
  HV_ERR_CORRUPT: 500,
};

/** The wire form of an error. */
export interface ApiErrorBody {
  error: { code: HvErrorCode; message: string; details: Record<string, unknown> };
}

/** HTTP status and body for any thrown value; non-HvErrors become `HV_ERR_INTERNAL`. */
export function errorResponse(err: unknown): { status: number; body: ApiErrorBody } {
  if (err instanceof HvError) {
    return {
      status: STATUS[err.code] ?? 500,
      body: { error: { code: err.code, message: err.message, details: err.details ?? {} } },
    };
  }
  const e = err as { validation?: unknown; message?: string; statusCode?: number };
  if (
    e?.validation !== undefined ||
    (e?.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)
  ) {
    return {
      status: 400,
      body: {
        error: { code: 'HV_ERR_INVALID_ARGUMENT', message: `bad request: ${e.message ?? ''}`, details: {} },
      },
    };
  }
  return {
    status: 500,
    body: {
      error: {
        code: 'HV_ERR_INTERNAL',
        message: `internal error: ${e?.message ?? String(err)}`,
        details: {},
      },
    },
  };
}

/**
 * Rebuilds the HvError from an error body (untrusted shape: anything unexpected becomes HV_ERR_INTERNAL).
 */
export function errorFromBody(body: unknown, status: number): HvError {
  const e = (body as { error?: Partial<SerializedHvError> } | null)?.error;
  if (e && typeof e.code === 'string' && e.code.startsWith('HV_ERR_') && typeof e.message === 'string') {
    const details = typeof e.details === 'object' && e.details !== null ? e.details : {};
    return HvError.fromJSON({ name: 'HvError', code: e.code, message: e.message, details });
  }
  return new HvError('HV_ERR_INTERNAL', `management API answered HTTP ${status} without an error object`);
}
