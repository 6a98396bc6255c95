/**
 * The layering of ARCHITECTURE.md, checked on every import of every `src/**\/*.ts` file (static, type-only,
 * re-exports and dynamic `import()`): imports point down, never up or sideways.
 *
 *   cli/ web/  →  host/ guest/  →  devices/<name>/{host,guest}.ts  →  vmbus/  →  protocol/
 *   disk/ and bridges/ are Node libraries beside the stack (they use protocol/ only).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../../', import.meta.url)));
const SRC = join(ROOT, 'src');

/** Top folders each top folder may import from (besides itself). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  protocol: [],
  vmbus: ['protocol'],
  devices: ['protocol', 'vmbus'],
  disk: ['protocol'],
  bridges: ['protocol', 'disk'],
  host: ['protocol', 'vmbus', 'devices', 'disk', 'bridges'],
  guest: ['protocol', 'vmbus', 'devices', 'disk', 'bridges'],
  cli: ['protocol', 'vmbus', 'devices', 'disk', 'bridges', 'host', 'guest'],
  web: ['protocol', 'vmbus', 'devices', 'disk', 'bridges', 'host'],
};
/** Folders that may not use Node's modules at all. */
const NO_NODE = new Set(['protocol', 'vmbus', 'devices']);

/** `host`/`guest` for a device's VSP/VSC file, null for a file both sides share. */
function deviceSide(srcPath: string): 'host' | 'guest' | null {
  const base = srcPath.split('/').at(-1);
  return base === 'host.ts' ? 'host' : base === 'guest.ts' ? 'guest' : null;
}

/**
 * Why `from` (a path under src/, e.g. `devices/kvp/host.ts`) may not import `spec`, resolved to `to` (a
 * path under src/, or null for a package or `node:` module); null when the import is allowed.
 */
export function violation(from: string, spec: string, to: string | null): string | null {
  const layer = from.split('/')[0] ?? '';
  if (to === null) {
    return spec.startsWith('node:') && NO_NODE.has(layer) ? `${layer}/ has no Node imports` : null;
  }
  if (to.startsWith('..')) return 'imports from outside src/';
  const target = to.split('/')[0] ?? '';
  if (!(target in MAY_IMPORT)) return null; // a file directly under src/
  if (target !== layer && !MAY_IMPORT[layer]?.includes(target)) return `${layer}/ never imports ${target}/`;
  if (layer === 'devices' && target === 'devices') {
    const [, dev] = from.split('/');
    const [, toDev] = to.split('/');
    if (toDev !== dev && toDev !== 'ic') return `devices/${dev}/ imports only its own folder and devices/ic/`;
    const side = deviceSide(from);
    const toSide = deviceSide(to);
    if (toSide !== null && side !== toSide) {
      return side === null
        ? `a file both sides share never imports ${toSide} code`
        : `${side} code never imports ${toSide} code`;
    }
  }
  return null;
}

/** Every module specifier in `code`: import/export … from, side-effect imports, dynamic import(). */
function specifiers(code: string): string[] {
  const stripped = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  for (const re of [
    /\b(?:import|export)\b[^;'"`]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ]) {
    for (const m of stripped.matchAll(re)) out.push(m[1] ?? '');
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

test('the rule itself: up, sideways and cross-side imports are reported, downward ones are not', () => {
  const bad: [string, string, string | null][] = [
    ['protocol/ic/kvp.ts', '../../vmbus/ring.ts', 'vmbus/ring.ts'],
    ['protocol/errors.ts', 'node:util', null],
    ['vmbus/client.ts', '../devices/ic/guest.ts', 'devices/ic/guest.ts'],
    ['devices/kvp/host.ts', './guest.ts', 'devices/kvp/guest.ts'],
    ['devices/vss/guest.ts', '../ic/host.ts', 'devices/ic/host.ts'],
    ['devices/fcopy/host.ts', '../kvp/host.ts', 'devices/kvp/host.ts'],
    ['devices/storage/scsi-disk.ts', './guest.ts', 'devices/storage/guest.ts'],
    ['devices/storage/host.ts', '../../disk/open.ts', 'disk/open.ts'],
    ['host/vm.ts', '../guest/kernel.ts', 'guest/kernel.ts'],
    ['guest/kernel.ts', '../host/vm.ts', 'host/vm.ts'],
    ['host/vm.ts', '../cli/output.ts', 'cli/output.ts'],
    ['disk/open.ts', '../vmbus/memory.ts', 'vmbus/memory.ts'],
  ];
  for (const [from, spec, to] of bad) assert.notEqual(violation(from, spec, to), null, `${from} → ${spec}`);
  const good: [string, string, string | null][] = [
    ['vmbus/client.ts', '../protocol/guid.ts', 'protocol/guid.ts'],
    ['devices/kvp/host.ts', '../ic/host.ts', 'devices/ic/host.ts'],
    ['devices/storage/host.ts', './scsi-disk.ts', 'devices/storage/scsi-disk.ts'],
    ['host/vm.ts', 'node:fs', null],
    ['guest/storage.ts', '../bridges/nbd/server.ts', 'bridges/nbd/server.ts'],
    ['cli/client.ts', '../host/host.ts', 'host/host.ts'],
  ];
  for (const [from, spec, to] of good) assert.equal(violation(from, spec, to), null, `${from} → ${spec}`);
});

test('every import under src/ follows the layers of ARCHITECTURE.md', () => {
  const found: string[] = [];
  const files = sourceFiles(SRC);
  assert.ok(files.length > 100, `only ${files.length} source files found under ${SRC}`);
  for (const file of files) {
    const from = relative(SRC, file);
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      const to = spec.startsWith('.') ? relative(SRC, resolve(dirname(file), spec)) : null;
      const why = violation(from, spec, to);
      if (why) found.push(`src/${from} imports '${spec}': ${why}`);
    }
  }
  assert.deepEqual(found, []);
});
