/**
 * The management API server: the same Fastify routes on the Unix socket `$HVIS_HOME/hvis.sock` (what the
 * CLI uses) and on HTTP `127.0.0.1:<port>` (dashboards, scripts). `api.json` beside the socket records
 * `{ pid, port, socket }` while the host runs.
 *
 * The TCP listener only answers requests whose `Host` header names the loopback address (against DNS
 * rebinding) and only accepts state-changing requests with a JSON body type (a browser cannot send that
 * cross-origin without a CORS preflight, which we never grant).
 */

import { mkdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { HvError } from '../../protocol/errors.ts';
import { writeFileAtomic } from '../atomic-file.ts';
import type { Host } from '../host.ts';
import { registerCopyRoutes } from './copy-routes.ts';
import { registerKvpRoutes } from './kvp-routes.ts';
import { registerRoutes } from './routes.ts';
import { registerStorageRoutes } from './storage-routes.ts';

/** Default HTTP port of the management API on 127.0.0.1. */
export const DEFAULT_API_PORT = 7405;

/** A Fastify instance with every route, not listening (the offline CLI uses `inject()` on it). */
export async function buildApi(host: Host): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1 << 20 });
  registerRoutes(app, host);
  registerCopyRoutes(app, host);
  registerKvpRoutes(app, host);
  registerStorageRoutes(app, host);
  await app.ready();
  return app;
}

export interface ApiOptions {
  /**
   * TCP port on 127.0.0.1; 0 picks a free one (see `port` of the result). Default {@link DEFAULT_API_PORT},
   * or a free port when that one is taken.
   */
  port?: number;
}

export interface RunningApi {
  socketPath: string;
  port: number;
  close(): Promise<void>;
}

/** True when something accepts connections on the Unix socket at `path`. */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Starts both listeners. A stale socket left by a crashed host is removed.
 * @throws HvError `HV_ERR_ALREADY_EXISTS` when another host already serves this `$HVIS_HOME`;
 *   `HV_ERR_IO` when the TCP port is taken.
 */
export async function startApi(host: Host, o: ApiOptions = {}): Promise<RunningApi> {
  const { socket, apiInfo, home } = host.paths;
  await mkdir(home, { recursive: true });
  if (await socketAlive(socket)) {
    throw new HvError(
      'HV_ERR_ALREADY_EXISTS',
      `a hvis host is already running for ${home} (socket ${socket})`,
    );
  }
  await rm(socket, { force: true });

  const unix = Fastify({ logger: false, bodyLimit: 1 << 20 });
  registerRoutes(unix, host);
  registerCopyRoutes(unix, host);
  registerKvpRoutes(unix, host);
  registerStorageRoutes(unix, host);
  const tcp = Fastify({ logger: false, bodyLimit: 1 << 20 });
  tcp.addHook('onRequest', async (req, reply) => {
    const hostHeader = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (hostHeader !== '127.0.0.1' && hostHeader !== 'localhost') {
      return reply.status(403).send({
        error: { code: 'HV_ERR_INVALID_ARGUMENT', message: `refusing Host '${hostHeader}'`, details: {} },
      });
    }
    if (
      req.method !== 'GET' &&
      req.method !== 'HEAD' &&
      !/^application\/json\b/.test(req.headers['content-type'] ?? '')
    ) {
      return reply.status(415).send({
        error: {
          code: 'HV_ERR_INVALID_ARGUMENT',
          message: 'send state-changing requests as application/json',
          details: {},
        },
      });
    }
    return undefined;
  });
  registerRoutes(tcp, host);
  registerCopyRoutes(tcp, host);
  registerKvpRoutes(tcp, host);
  registerStorageRoutes(tcp, host);

  await unix.listen({ path: socket });
  let port: number;
  try {
    try {
      await tcp.listen({ host: '127.0.0.1', port: o.port ?? DEFAULT_API_PORT });
    } catch (err) {
      // The default port is a convenience: when another host (another $HVIS_HOME) holds it, take any free
      // port; api.json says which. A port the user asked for is not replaced.
      if (o.port !== undefined || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      await tcp.listen({ host: '127.0.0.1', port: 0 });
    }
    const addr = tcp.server.address();
    port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  } catch (err) {
    await unix.close();
    throw new HvError(
      'HV_ERR_IO',
      `cannot listen on 127.0.0.1:${o.port ?? DEFAULT_API_PORT} (${(err as Error).message}); pick another with --api-port`,
    );
  }
  await writeFileAtomic(apiInfo, `${JSON.stringify({ pid: process.pid, port, socket })}\n`);
  return {
    socketPath: socket,
    port,
    async close() {
      await Promise.all([unix.close(), tcp.close()]);
      await rm(apiInfo, { force: true });
      await rm(socket, { force: true });
    },
  };
}
