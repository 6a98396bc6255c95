/**
 * The Copy-VMFile route: `POST /api/v1/vms/:name/copy-file` `{sourcePath, destinationPath, createFullPath,
 * force, fileSource: 'Host'}`. The answer is NDJSON, one object per line: `{"progress":{"done","total"}}`
 * (bytes, at most every 200 ms), then `{"result":{"bytes"}}` or `{"error":{code,message,details}}`.
 * A client that goes away before the end cancels the copy (the guest gets CANCEL_FCOPY).
 */
import type { FastifyInstance } from 'fastify';
import type { Host } from '../host.ts';
import { errorResponse } from './errors.ts';
import { API_PREFIX } from './routes.ts';

interface CopyBody {
  sourcePath: string;
  destinationPath: string;
  createFullPath?: boolean;
  force?: boolean;
  fileSource?: 'Host';
}

const PROGRESS_EVERY_MS = 200;

/** Registers the route on `app`. */
export function registerCopyRoutes(app: FastifyInstance, host: Host): void {
  app.post<{ Params: { name: string }; Body: CopyBody }>(
    `${API_PREFIX}/vms/:name/copy-file`,
    {
      schema: {
        params: {
          type: 'object',
          properties: { name: { type: 'string', minLength: 1, maxLength: 256 } },
          required: ['name'],
        },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['sourcePath', 'destinationPath'],
          properties: {
            sourcePath: { type: 'string', minLength: 1, maxLength: 4096 },
            destinationPath: { type: 'string', minLength: 1, maxLength: 4096 },
            createFullPath: { type: 'boolean' },
            force: { type: 'boolean' },
            fileSource: { type: 'string', enum: ['Host'] },
          },
        },
      },
    },
    async (req, reply) => {
      const vm = host.vm(req.params.name);
      const abort = new AbortController();
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.on('close', () => {
        if (!res.writableFinished) abort.abort();
      });
      let last = 0;
      const line = (o: unknown) => {
        if (!res.destroyed) res.write(`${JSON.stringify(o)}\n`);
      };
      try {
        const bytes = await vm.copyFile(
          {
            sourcePath: req.body.sourcePath,
            destinationPath: req.body.destinationPath,
            createFullPath: req.body.createFullPath === true,
            force: req.body.force === true,
          },
          {
            signal: abort.signal,
            onProgress: (done, total) => {
              const now = Date.now();
              if (now - last < PROGRESS_EVERY_MS) return;
              last = now;
              line({ progress: { done, total } });
            },
          },
        );
        line({ result: { bytes } });
      } catch (e) {
        line(errorResponse(e).body);
      }
      res.end();
    },
  );
}
