/**
 * Builds the project's C helper on first use with gcc (Debian package `gcc`): `hvshim`, the LD_PRELOAD
 * library that attaches real Hyper-V daemons to our guest kernel. Output goes to `dist/native/`, rebuilt
 * when the source is newer.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HvError } from '../protocol/errors.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export type NativeTool = 'hvshim';

/**
 * Path of the built helper (`dist/native/hvshim.so`), compiling it when needed.
 * @throws HvError `HV_ERR_UNSUPPORTED` when gcc is missing or the build fails.
 */
export function nativeTool(tool: NativeTool): string {
  const src = `${ROOT}native/${tool}/${tool}.c`;
  const outDir = `${ROOT}dist/native`;
  const out = `${outDir}/${tool}.so`;
  try {
    if (statSync(out).mtimeMs >= statSync(src).mtimeMs) return out;
  } catch {
    // not built yet
  }
  mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const args = ['-O2', '-Wall', '-fPIC', '-shared', '-o', tmp, src, '-ldl'];
  try {
    execFileSync('gcc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new HvError(
      'HV_ERR_UNSUPPORTED',
      `cannot build ${tool} with gcc (install the Debian package 'gcc'): ${(e as Error).message}`,
    );
  }
  renameSync(tmp, out);
  return out;
}
