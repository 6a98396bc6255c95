/**
 * How the CLI reaches the host. When a host runs (`hvis up`), requests go over its Unix socket
 * `$HVIS_HOME/hvis.sock`; otherwise the same API routes are answered in-process by an *offline* host
 * that can read and edit VM configurations but not run VMs (those requests fail with "no hvis host is
 * running: start one with 'hvis up'"). Errors come back as HvError with their codes.
 */
import { request } from 'node:http';
import { errorFromBody } from '../host/api/errors.ts';
import { API_PREFIX } from '../host/api/routes.ts';
import { homePaths } from '../host/home.ts';
import { HvError } from '../protocol/errors.ts';

export interface ApiClient {
  /** True when talking to a running host. */
  readonly online: boolean;
  /**
   * One API call; `path` is relative to `/api/v1`.
   * @throws HvError rebuilt from the host's error answer.
   */
  call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T>;
  close(): Promise<void>;
}

const MAX_ANSWER_BYTES = 64 << 20;

/** Sends one request over the Unix socket; rejects with the socket error code (ENOENT, ECONNREFUSED...). */
function socketCall(
  socketPath: string,
  method: string,
  path: string,
  body: unknown,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method,
        path: API_PREFIX + path,
        headers:
          payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) res.destroy(new Error('answer too large'));
          else chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, json: text === '' ? null : JSON.parse(text) });
          } catch {
            reject(new HvError('HV_ERR_INTERNAL', `management API sent non-JSON (HTTP ${res.statusCode})`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Rejects socket errors that mean "nobody is listening". */
function isNoHost(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTSOCK';
}

/**
 * Connects to the running host for `home`, or falls back to an offline in-process host.
 * @param home the state directory (default `$HVIS_HOME` or `~/.hvis`).
 */
export async function connectHost(home?: string): Promise<ApiClient> {
  const paths = homePaths(home);
  try {
    const probe = await socketCall(paths.socket, 'GET', '/host', undefined);
    if (probe.status === 200) return onlineClient(paths.socket);
  } catch (err) {
    if (!isNoHost(err)) throw err;
  }
  return offlineClient(paths.home);
}

function onlineClient(socketPath: string): ApiClient {
  return {
    online: true,
    async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
      let r: { status: number; json: unknown };
      try {
        r = await socketCall(socketPath, method, path, body);
      } catch (err) {
        if (isNoHost(err) || (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
          throw new HvError(
            'HV_ERR_INVALID_STATE',
            "the hvis host stopped while answering; start one with 'hvis up'",
          );
        }
        throw err;
      }
      if (r.status >= 400) throw errorFromBody(r.json, r.status);
      return r.json as T;
    },
    async close() {},
  };
}

async function offlineClient(home: string): Promise<ApiClient> {
  // Loaded lazily: only the offline path needs the host's code and Fastify in the CLI process.
  const { Host } = await import('../host/host.ts');
  const { buildApi } = await import('../host/api/server.ts');
  const host = await Host.open({ home });
  const app = await buildApi(host);
  return {
    online: false,
    async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
      const res = await app.inject({
        method,
        url: API_PREFIX + path,
        ...(body !== undefined && {
          payload: body as object,
          headers: { 'content-type': 'application/json' },
        }),
      });
      const json: unknown = res.body === '' ? null : JSON.parse(res.body);
      if (res.statusCode >= 400) throw errorFromBody(json, res.statusCode);
      return json as T;
    },
    close: () => app.close(),
  };
}

/** Builds `?name=a&name=b` for list parameters. */
export function query(params: Record<string, readonly string[] | string | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) q.append(k, x);
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}
