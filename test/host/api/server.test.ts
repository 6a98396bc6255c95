import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { errorFromBody } from '../../../src/host/api/errors.ts';
import { buildApi, DEFAULT_API_PORT, startApi } from '../../../src/host/api/server.ts';
import { Host } from '../../../src/host/host.ts';
import { HvError } from '../../../src/protocol/errors.ts';

async function offline() {
  const host = await Host.open({ home: await mkdtemp(join(tmpdir(), 'hvis-api-')) });
  return { host, app: await buildApi(host) };
}

test('routes answer PowerShell-shaped objects; errors cross as {error: {code, message}} with a matching status', async () => {
  const { app } = await offline();
  assert.deepEqual((await app.inject({ method: 'GET', url: '/api/v1/vms' })).json(), []);
  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/vms',
    payload: { name: 'web1', switchName: 'Default Switch' },
  });
  assert.equal(created.statusCode, 201);
  assert.equal(created.json().Name, 'web1');
  assert.equal(created.json().State, 'Off');
  assert.equal(created.json().NetworkAdapters[0].SwitchName, 'Default Switch');

  const dup = await app.inject({ method: 'POST', url: '/api/v1/vms', payload: { name: 'web1' } });
  assert.equal(dup.statusCode, 409);
  assert.equal(dup.json().error.code, 'HV_ERR_ALREADY_EXISTS');

  const missing = await app.inject({ method: 'GET', url: '/api/v1/vms/nope/integration-services' });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json().error.code, 'HV_ERR_NOT_FOUND');
  assert.match(missing.json().error.message, /no VM named 'nope'; VMs on this host: 'web1'/);

  const badBody = await app.inject({
    method: 'POST',
    url: '/api/v1/vms',
    payload: { name: 'a', generation: 3 },
  });
  assert.equal(badBody.statusCode, 400);
  assert.equal(badBody.json().error.code, 'HV_ERR_INVALID_ARGUMENT');

  const noHost = await app.inject({ method: 'POST', url: '/api/v1/vms/web1/start', payload: {} });
  assert.equal(noHost.statusCode, 409);
  assert.equal(noHost.json().error.message, "no hvis host is running: start one with 'hvis up'");

  const rehydrated = errorFromBody(noHost.json(), noHost.statusCode);
  assert.ok(rehydrated instanceof HvError);
  assert.equal(rehydrated.code, 'HV_ERR_INVALID_STATE');
  assert.equal(errorFromBody('<html>', 502).code, 'HV_ERR_INTERNAL');
  await app.close();
});

test('Get-VM -Name takes wildcards; an exact name that matches nothing is an error, a pattern is not', async () => {
  const { app } = await offline();
  for (const name of ['web1', 'web2', 'db1'])
    await app.inject({ method: 'POST', url: '/api/v1/vms', payload: { name } });
  const names = async (q: string) =>
    (await app.inject({ method: 'GET', url: `/api/v1/vms${q}` })).json().map((v: { Name: string }) => v.Name);
  assert.deepEqual(await names('?name=WEB*'), ['web1', 'web2']);
  assert.deepEqual(await names('?name=db?&name=web2'), ['db1', 'web2']);
  assert.deepEqual(await names('?name=x*'), []);
  assert.equal((await app.inject({ method: 'GET', url: '/api/v1/vms?name=x' })).statusCode, 404);
  await app.close();
});

function raw(port: number, method: string, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(method === 'GET' ? undefined : '{}');
  });
}

test('the HTTP listener serves loopback names only and refuses non-JSON state changes; api.json names the port', async () => {
  const { host } = await offline();
  const api = await startApi(host, { port: 0 });
  try {
    const info = JSON.parse(await readFile(host.paths.apiInfo, 'utf8'));
    assert.equal(info.port, api.port);
    assert.equal(info.socket, host.paths.socket);
    assert.equal(await raw(api.port, 'GET', '/api/v1/vms', { host: `127.0.0.1:${api.port}` }), 200);
    assert.equal(await raw(api.port, 'GET', '/api/v1/vms', { host: 'evil.example:80' }), 403);
    assert.equal(
      await raw(api.port, 'POST', '/api/v1/vms', {
        host: `localhost:${api.port}`,
        'content-type': 'text/plain',
      }),
      415,
    );
    // A second host on the same $HVIS_HOME is refused while the first serves it.
    await assert.rejects(startApi(host, { port: 0 }), { code: 'HV_ERR_ALREADY_EXISTS' });
  } finally {
    await api.close();
  }
});

test('the default HTTP port falls back to a free one when taken; an explicit port does not', async () => {
  const a = await offline();
  const b = await offline();
  const first = await startApi(a.host, { port: 0 });
  // Hold the default port (if nothing else already does) so the fallback must happen.
  const blocker = createServer();
  await new Promise<void>((resolve) => {
    blocker.once('error', () => resolve());
    blocker.listen(DEFAULT_API_PORT, '127.0.0.1', () => resolve());
  });
  try {
    await assert.rejects(
      startApi(b.host, { port: first.port }),
      /cannot listen on 127\.0\.0\.1:\d+ .*--api-port/,
    );
    const fallback = await startApi(b.host);
    assert.notEqual(fallback.port, DEFAULT_API_PORT);
    assert.ok(fallback.port > 0);
    await fallback.close();
  } finally {
    blocker.close();
    await first.close();
  }
});
