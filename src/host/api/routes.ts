/**
 * The management API's JSON routes (prefix `/api/v1`), one per `hvis` command. Bodies and answers use
 * the PowerShell-shaped views of `vm-view.ts`. Every error answers `{ error: { code, message, details } }`.
 *
 * | route | cmdlet |
 * |---|---|
 * | GET /host | Get-VMHost (ours: pid, home, online) |
 * | GET /vms?name=<pattern>... | Get-VM |
 * | POST /vms | New-VM |
 * | DELETE /vms/:name?force=true | Remove-VM |
 * | POST /vms/:name/start | Start-VM |
 * | POST /vms/:name/stop `{turnOff, force, timeoutSeconds}` | Stop-VM |
 * | POST /vms/:name/restart | Restart-VM (hard restart) |
 * | GET /vms/:name/integration-services?name=... | Get-VMIntegrationService |
 * | POST /vms/:name/integration-services/(enable or disable) `{name: [...]}` | Enable-/Disable-VMIntegrationService |
 * | GET /vms/:name/lsvmbus | lsvmbus inside the guest |
 */
import type { FastifyInstance } from 'fastify';
import type { Host } from '../host.ts';
import { hasWildcard, wildcardRegExp } from '../wildcard.ts';
import { errorResponse } from './errors.ts';

export const API_PREFIX = '/api/v1';

const names = {
  type: 'array',
  items: { type: 'string', minLength: 1, maxLength: 256 },
  maxItems: 64,
} as const;
const nameParam = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 256 } },
  required: ['name'],
} as const;
const timeoutSeconds = { type: 'integer', minimum: 0, maximum: 86_400 } as const;

interface NameParams {
  name: string;
}

/** Registers every route on `app`, answering from `host`. */
export function registerRoutes(app: FastifyInstance, host: Host): void {
  app.setErrorHandler((err, _req, reply) => {
    const { status, body } = errorResponse(err);
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({
      error: { code: 'HV_ERR_NOT_FOUND', message: `no API route ${req.method} ${req.url}`, details: {} },
    });
  });

  app.get(`${API_PREFIX}/host`, async () => ({
    Pid: process.pid,
    Home: host.paths.home,
    Online: host.online,
    ConfigurationProblems: host.problems.map((p) => p.message),
  }));

  app.get<{ Querystring: { name?: string[] } }>(
    `${API_PREFIX}/vms`,
    { schema: { querystring: { type: 'object', properties: { name: names } } } },
    async (req) => host.find(req.query.name ?? []).map((vm) => vm.view()),
  );

  app.post<{
    Body: {
      name: string;
      memoryStartupBytes?: number;
      generation?: 1 | 2;
      processorCount?: number;
      switchName?: string;
      newVhdPath?: string;
      newVhdSizeBytes?: number;
    };
  }>(
    `${API_PREFIX}/vms`,
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 256 },
            memoryStartupBytes: { type: 'integer', minimum: 0 },
            generation: { type: 'integer', enum: [1, 2] },
            processorCount: { type: 'integer', minimum: 1, maximum: 240 },
            switchName: { type: 'string', minLength: 1, maxLength: 256 },
            newVhdPath: { type: 'string', minLength: 1, maxLength: 4096 },
            newVhdSizeBytes: { type: 'integer', minimum: 1 },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const vm = await host.newVm({
        name: b.name,
        ...(b.memoryStartupBytes !== undefined && { memoryStartupBytes: b.memoryStartupBytes }),
        ...(b.generation !== undefined && { generation: b.generation }),
        ...(b.processorCount !== undefined && { processorCount: b.processorCount }),
        ...(b.switchName !== undefined && { switchName: b.switchName }),
        ...(b.newVhdPath !== undefined && {
          newVhd: { path: b.newVhdPath, sizeBytes: b.newVhdSizeBytes ?? 127 * 1024 ** 3 },
        }),
      });
      void reply.status(201);
      return vm.view();
    },
  );

  app.delete<{ Params: NameParams; Querystring: { force?: boolean } }>(
    `${API_PREFIX}/vms/:name`,
    {
      schema: {
        params: nameParam,
        querystring: { type: 'object', properties: { force: { type: 'boolean' } } },
      },
    },
    async (req) => {
      await host.removeVm(req.params.name, req.query.force === true);
      return { Removed: req.params.name };
    },
  );

  app.post<{ Params: NameParams }>(
    `${API_PREFIX}/vms/:name/start`,
    { schema: { params: nameParam } },
    async (req) => {
      const vm = host.vm(req.params.name);
      await vm.start();
      return vm.view();
    },
  );

  app.post<{
    Params: NameParams;
    Body: { turnOff?: boolean; force?: boolean; timeoutSeconds?: number } | undefined;
  }>(
    `${API_PREFIX}/vms/:name/stop`,
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { turnOff: { type: 'boolean' }, force: { type: 'boolean' }, timeoutSeconds },
        },
      },
    },
    async (req) => {
      const vm = host.vm(req.params.name);
      const b = req.body ?? {};
      const mode = b.turnOff ? 'turnOff' : b.force ? 'force' : 'shutdown';
      await vm.stop(b.timeoutSeconds === undefined ? { mode } : { mode, timeoutMs: b.timeoutSeconds * 1000 });
      return vm.view();
    },
  );

  app.post<{ Params: NameParams }>(
    `${API_PREFIX}/vms/:name/restart`,
    { schema: { params: nameParam } },
    async (req) => {
      const vm = host.vm(req.params.name);
      await vm.restart();
      return vm.view();
    },
  );

  app.get<{ Params: NameParams; Querystring: { name?: string[] } }>(
    `${API_PREFIX}/vms/:name/integration-services`,
    { schema: { params: nameParam, querystring: { type: 'object', properties: { name: names } } } },
    async (req) => {
      const all = host.vm(req.params.name).integrationServices();
      const pats = req.query.name ?? [];
      if (pats.length === 0) return all;
      return all.filter((s) =>
        pats.some((p) =>
          hasWildcard(p) ? wildcardRegExp(p).test(s.Name) : p.toLowerCase() === s.Name.toLowerCase(),
        ),
      );
    },
  );

  for (const action of ['enable', 'disable'] as const) {
    app.post<{ Params: NameParams; Body: { name: string[] } }>(
      `${API_PREFIX}/vms/:name/integration-services/${action}`,
      {
        schema: {
          params: nameParam,
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['name'],
            properties: { name: { ...names, minItems: 1 } },
          },
        },
      },
      async (req) => {
        const vm = host.vm(req.params.name);
        const out = [];
        for (const n of req.body.name) out.push(await vm.setIntegrationService(n, action === 'enable'));
        return out;
      },
    );
  }

  app.get<{ Params: NameParams }>(
    `${API_PREFIX}/vms/:name/lsvmbus`,
    { schema: { params: nameParam } },
    async (req) => host.vm(req.params.name).lsvmbus(),
  );
}
