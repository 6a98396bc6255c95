/**
 * Compiles C against Debian's kernel headers the kbuild "asm-offsets" way (gcc -S, values emitted as
 * `->NAME $value` assembler strings) and returns the values. include/linux/hyperv.h is kernel-internal, so it
 * needs __KERNEL__, the kernel include paths and the kconfig/compiler prelude kbuild passes with -include.
 * Missing gcc or headers fail with the Debian package to install (test/peers.ts rule: never skip).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePeer } from '../peers.ts';

/** The `linux-headers-<ver>-common` and `linux-headers-<ver>-amd64` trees of one installed kernel. */
export function findKernelHeaders(): { common: string; arch: string; version: string } {
  const src = '/usr/src';
  const dirs = existsSync(src) ? readdirSync(src) : [];
  for (const d of dirs.sort().reverse()) {
    const m = /^linux-headers-(.+)-common$/.exec(d);
    if (!m) continue;
    const common = join(src, d);
    const arch = join(src, `linux-headers-${m[1]}-amd64`);
    if (existsSync(join(common, 'include/linux/hyperv.h')) && existsSync(join(arch, 'include/generated'))) {
      return { common, arch, version: m[1]! };
    }
  }
  throw new Error(
    "missing test peer 'include/linux/hyperv.h' under /usr/src/linux-headers-*-common: install the Debian package 'linux-headers-amd64' (npm run setup does)",
  );
}

/**
 * Compiles `body` (statements using kbuild's DEFINE/OFFSET/BLANK macros from <linux/kbuild.h>) inside a
 * function, after including `headers`, and returns each emitted symbol's value as a bigint.
 */
export function kernelConstants(headers: string[], body: string): Map<string, bigint> {
  const gcc = requirePeer('gcc', 'gcc');
  const { common, arch } = findKernelHeaders();
  const dir = mkdtempSync(join(tmpdir(), 'hvis-oracle-'));
  try {
    const c = join(dir, 'oracle.c');
    const s = join(dir, 'oracle.s');
    const src = [
      '#include <linux/kbuild.h>',
      '#include <linux/stddef.h>',
      ...headers.map((h) => `#include <${h}>`),
      'void hvis_oracle(void);',
      'void hvis_oracle(void) {',
      body,
      '}',
    ].join('\n');
    writeFileSync(c, src);
    const inc = (p: string) => ['-I', p];
    execFileSync(
      gcc,
      [
        '-S',
        '-o',
        s,
        '-nostdinc',
        '-std=gnu11',
        '-w',
        '-fno-PIE',
        '-mcmodel=kernel',
        '-D__KERNEL__',
        '-DKBUILD_MODNAME="hvis_oracle"',
        '-DKBUILD_BASENAME="hvis_oracle"',
        ...inc(`${common}/arch/x86/include`),
        ...inc(`${arch}/arch/x86/include/generated`),
        ...inc(`${common}/include`),
        ...inc(`${arch}/include`),
        ...inc(`${common}/arch/x86/include/uapi`),
        ...inc(`${arch}/arch/x86/include/generated/uapi`),
        ...inc(`${common}/include/uapi`),
        ...inc(`${arch}/include/generated/uapi`),
        '-include',
        `${common}/include/linux/compiler-version.h`,
        '-include',
        `${common}/include/linux/kconfig.h`,
        '-include',
        `${common}/include/linux/compiler_types.h`,
        c,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const out = new Map<string, bigint>();
    for (const m of readFileSync(s, 'utf8').matchAll(/"->(\w+) \$?(-?\d+) /g)) out.set(m[1]!, BigInt(m[2]!));
    return out;
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`kernel-header oracle failed to compile: ${stderr || (e as Error).message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
