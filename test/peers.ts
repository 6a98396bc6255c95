/**
 * Real-peer lookup for tests. A missing peer fails the test with a message naming the Debian package to
 * install (`npm run setup` installs them all); tests never skip silently.
 */

import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

/** Returns the absolute path of `tool`, or throws naming the package that provides it. */
export function requirePeer(tool: string, debianPackage: string): string {
  try {
    const p = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    if (p) {
      accessSync(p, constants.X_OK);
      return p;
    }
  } catch {
    // fall through to the error below
  }
  throw new Error(
    `missing test peer '${tool}': install the Debian package '${debianPackage}' (npm run setup does)`,
  );
}
