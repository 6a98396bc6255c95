/**
 * Damaged and hostile VHDs: each gives a clear HvError (or a repair under test-vhd --repair), never another
 * exception; the parsers are fuzzed with fast-check. Layout facts from the VHD spec v1.0.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { createDisk, openDisk } from '../../../src/disk/open.ts';
import { testDisk } from '../../../src/disk/ops/test.ts';
import { decodeDynamicHeader } from '../../../src/disk/vhd/dynamic-header.ts';
import { decodeFooter, vhdChecksum } from '../../../src/disk/vhd/footer.ts';
import { isHvError } from '../../../src/protocol/errors.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvis-vhd-bad-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;

async function dynamicWithData(name: string): Promise<string> {
  const file = path.join(dir, name);
  const d = await createDisk(file, { size: 8 * MiB, type: 'dynamic' });
  await d.write(new Uint8Array(4096).fill(0x42), 2 * MiB);
  await d.close();
  return file;
}

async function rejects(file: string, code: string, re: RegExp, readOnly = true): Promise<void> {
  await assert.rejects(
    openDisk(file, { readOnly }),
    (e: unknown) => isHvError(e) && e.code === code && re.test(e.message),
  );
}

test('footer checksum: trailing bad + copy good opens read-only only; repair fixes; both bad is corrupt', async () => {
  const file = await dynamicWithData('footer.vhd');
  const size = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, new Uint8Array([0xff]), 0, 1, size - 512 + 40); // original size byte, checksum now wrong
  fs.closeSync(fd);
  await rejects(file, 'HV_ERR_CORRUPT', /footer .*damaged.*test-vhd --repair/, false);
  const ro = await openDisk(file, { readOnly: true });
  const b = new Uint8Array(4096);
  await ro.read(b, 2 * MiB);
  assert.equal(b[0], 0x42);
  await ro.close();
  const report = await testDisk(file, { repair: true });
  assert.ok(report.Problems.some((p) => p.code === 'footer-damaged' && p.repaired));
  assert.equal((await testDisk(file)).Valid, true);
  const fd2 = fs.openSync(file, 'r+');
  fs.writeSync(fd2, new Uint8Array([0xff]), 0, 1, fs.statSync(file).size - 512 + 40);
  fs.writeSync(fd2, new Uint8Array([0xff]), 0, 1, 40);
  fs.closeSync(fd2);
  await rejects(file, 'HV_ERR_CORRUPT', /footer/);
});

test('dynamic header checksum wrong is corrupt (QEMU would still open it)', async () => {
  const file = await dynamicWithData('hdr.vhd');
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, new Uint8Array([0x7f]), 0, 1, 512 + 60); // reserved byte of the header
  fs.closeSync(fd);
  await rejects(file, 'HV_ERR_CORRUPT', /dynamic disk header checksum/);
  const r = await testDisk(file, { repair: true });
  assert.ok(r.Problems.some((p) => p.code === 'dynamic-header-checksum' && p.repaired));
});

test('BAT entries past the end of file or into metadata are corrupt; repair drops them', async () => {
  for (const [name, sector, re] of [
    ['past.vhd', 0x00100000, /runs past the end/],
    ['meta.vhd', 1, /points into metadata/],
  ] as const) {
    const file = await dynamicWithData(name);
    const fd = fs.openSync(file, 'r+');
    const e = Buffer.alloc(4);
    e.writeUInt32BE(sector);
    fs.writeSync(fd, e, 0, 4, 1536 + 3 * 4); // BAT entry 3
    fs.closeSync(fd);
    await rejects(file, 'HV_ERR_CORRUPT', re);
    const r = await testDisk(file, { repair: true });
    assert.ok(
      r.Problems.some((p) => p.code === 'bat-entry' && p.repaired),
      JSON.stringify(r),
    );
    const d = await openDisk(file, { readOnly: true });
    const b = new Uint8Array(4096);
    await d.read(b, 2 * MiB);
    assert.equal(b[0], 0x42);
    await d.close();
  }
});

test('truncated dynamic VHD is reported, not crashed on', async () => {
  const file = await dynamicWithData('trunc.vhd');
  fs.truncateSync(file, fs.statSync(file).size - MiB);
  await assert.rejects(openDisk(file, { readOnly: true }), (e: unknown) => isHvError(e, 'HV_ERR_CORRUPT'));
  assert.equal((await testDisk(file)).Valid, false);
});

test('missing parent and cyclic parent chains are refused with clear errors', async () => {
  const base = path.join(dir, 'p-base.vhd');
  const child = path.join(dir, 'p-child.vhd');
  (await createDisk(base, { size: 4 * MiB, type: 'dynamic' })).close();
  await (await createDisk(child, { type: 'differencing', parentPath: base })).close();
  fs.renameSync(base, `${base}.gone`);
  await rejects(child, 'HV_ERR_NOT_FOUND', /parent disk not found/);
  // base replaced by a differencing disk whose parent is `child`: child -> base -> child.
  const loop = path.join(dir, 'p-loop.vhd');
  await (
    await createDisk(loop, { type: 'differencing', parentPath: child }).catch(async () => {
      fs.renameSync(`${base}.gone`, base);
      return createDisk(loop, { type: 'differencing', parentPath: child });
    })
  ).close();
  fs.renameSync(loop, base);
  await assert.rejects(
    openDisk(child, { readOnly: true }),
    (e: unknown) => isHvError(e, 'HV_ERR_CORRUPT') && /cyclic|unique id/.test(e.message),
  );
});

test('absurd sizes in the footer are refused', async () => {
  const f = new Uint8Array(512);
  f.set(new TextEncoder().encode('conectix'));
  new DataView(f.buffer).setUint32(48, 0x10000000); // current size ≈ 2^60
  new DataView(f.buffer).setUint32(64, vhdChecksum(f, 512, 64));
  assert.throws(
    () => decodeFooter(f),
    (e: unknown) => isHvError(e, 'HV_ERR_CORRUPT'),
  );
});

test('fuzz: footer and dynamic header decoders throw only HvError', () => {
  const okOrHv = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      if (!isHvError(e)) throw e;
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 1100 }), fc.boolean(), (bytes, cookie) => {
      const b = new Uint8Array(Math.max(bytes.length, 1024));
      b.set(bytes);
      if (cookie) b.set(new TextEncoder().encode('conectix'));
      okOrHv(() => decodeFooter(bytes));
      okOrHv(() => decodeFooter(b));
      if (cookie) b.set(new TextEncoder().encode('cxsparse'));
      okOrHv(() => decodeDynamicHeader(b));
    }),
    { numRuns: 2000 },
  );
});

test('fuzz: mutated dynamic and differencing VHD files open and read with only HvErrors', async () => {
  const base = await dynamicWithData('fz-base.vhd');
  const child = path.join(dir, 'fz-child.vhd');
  const c = await createDisk(child, { type: 'differencing', parentPath: base });
  await c.write(new Uint8Array(1024).fill(7), 4 * MiB + 512);
  await c.close();
  const originals = [fs.readFileSync(base), fs.readFileSync(child)];
  await fc.assert(
    fc.asyncProperty(
      fc.nat(1),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      async (which, edits) => {
        const img = Buffer.from(originals[which]!);
        // Aim at the structures: footer copy, header, BAT, locators, block bitmaps, trailing footer.
        for (const [pos, v] of edits) img[pos % 8192 < 6144 ? pos % 6144 : img.length - 1 - (pos % 512)] = v;
        const file = path.join(dir, `fz-${which}.vhd`);
        fs.writeFileSync(file, img);
        const target = which === 0 ? file : child;
        if (which === 1) fs.copyFileSync(file, child);
        try {
          const d = await openDisk(target, { readOnly: true });
          try {
            const buf = new Uint8Array(MiB);
            for (let p = 0; p + buf.length <= d.size && p < 8 * MiB; p += buf.length) await d.read(buf, p);
          } finally {
            await d.close();
          }
        } catch (e) {
          if (!isHvError(e)) throw e;
        }
        await testDisk(target).catch((e: unknown) => {
          if (!isHvError(e)) throw e;
        });
        if (which === 1) fs.writeFileSync(child, originals[1]!);
      },
    ),
    { numRuns: 150 },
  );
});
