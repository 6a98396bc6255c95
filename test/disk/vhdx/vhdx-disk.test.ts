/**
 * disk-formats.md §5 VHDX cases 21–31 (headers, region tables, metadata, 512e, BAT interleave, block states,
 * partial last block, differencing chains, GUID discipline, fixed files) plus resize and trim. Damaged files are
 * made with the spec-layout byte surgery in helpers.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { batGeometry } from '../../../src/disk/vhdx/bat.ts';
import { checkVhdx, VhdxDisk } from '../../../src/disk/vhdx/index.ts';
import { isHvError } from '../../../src/protocol/errors.ts';
import { requirePeer } from '../../peers.ts';
import {
  BAT_GUID_BYTES,
  batEntry,
  currentHeader,
  dv,
  filled,
  HEADER1,
  HEADER2,
  headerFields,
  META_GUID_BYTES,
  MiB,
  REGION1,
  REGION2,
  readAt,
  region,
  reseal,
  setBatEntry,
  writeAt,
} from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'vhdx-disk-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `d${n++}.vhdx`);
const corruptErr = (re: RegExp) => (e: unknown) =>
  isHvError(e, 'HV_ERR_CORRUPT') && re.test((e as Error).message);

async function dynamic(size = 64 * MiB, blockSize = MiB): Promise<string> {
  const p = fresh();
  const d = await VhdxDisk.create(p, { size, type: 'dynamic', blockSize });
  await d.write(filled(4096, 0x5a), 0);
  await d.close();
  return p;
}

async function read(p: string, off: number, len: number): Promise<Uint8Array> {
  const d = await VhdxDisk.open(p, { readOnly: true });
  try {
    const b = new Uint8Array(len);
    await d.read(b, off);
    return b;
  } finally {
    await d.close();
  }
}

test('21: header 1 with a bad CRC falls back to header 2; both bad is corrupt', async () => {
  const p = await dynamic();
  const cur = currentHeader(p);
  const other = cur === HEADER1 ? HEADER2 : HEADER1;
  writeAt(p, cur + 200, Uint8Array.of(1)); // reserved byte: CRC now wrong
  assert.deepEqual(await read(p, 0, 4096), filled(4096, 0x5a));
  writeAt(p, other + 200, Uint8Array.of(1));
  await assert.rejects(VhdxDisk.open(p, { readOnly: true }), corruptErr(/no valid VHDX header/));
});

test('21: equal sequence numbers are accepted when the headers are identical, refused when they differ', async () => {
  const p = await dynamic();
  writeAt(p, HEADER2, readAt(p, HEADER1, 4096));
  assert.deepEqual(await read(p, 0, 4096), filled(4096, 0x5a));
  writeAt(p, HEADER2 + 16, Uint8Array.of(0xee)); // different FileWriteGuid, same sequence number
  reseal(p, HEADER2, 4096);
  await assert.rejects(VhdxDisk.open(p, { readOnly: true }), corruptErr(/same SequenceNumber/));
});

test('22: region table 1 corrupt → table 2 is used; check reports it and repair rewrites it', async () => {
  const p = await dynamic();
  writeAt(p, REGION1 + 1000, Uint8Array.of(9));
  assert.deepEqual(await read(p, 0, 4096), filled(4096, 0x5a));
  const c = await checkVhdx(p, { repair: false });
  assert.equal(c.ok, false);
  assert.match(c.problems.join('\n'), /region table at 192 KiB: .*checksum/);
  const r = await checkVhdx(p, { repair: true });
  assert.ok(r.repaired.length > 0);
  assert.deepEqual(await checkVhdx(p, { repair: false }), {
    ok: true,
    problems: [],
    repaired: [],
    notes: [],
  });
});

/** Adds a third region entry to both tables. */
function addRegion(p: string, offset: number, length: number, required: number): void {
  for (const t of [REGION1, REGION2]) {
    const b = readAt(p, t, 64 * 1024);
    const count = dv(b).getUint32(8, true);
    const o = 16 + count * 32;
    b.set(
      Uint8Array.from({ length: 16 }, (_, i) => i + 1),
      o,
    );
    dv(b).setBigUint64(o + 16, BigInt(offset), true);
    dv(b).setUint32(o + 24, length, true);
    dv(b).setUint32(o + 28, required, true);
    dv(b).setUint32(8, count + 1, true);
    writeAt(p, t, b);
    reseal(p, t, 64 * 1024);
  }
}

test('22: an unknown optional region is preserved across writes; unknown required, overlapping or too-small BAT regions are refused', async () => {
  const p = await dynamic();
  const end = statSync(p).size;
  writeAt(p, end, filled(MiB, 0xc3)); // the unknown region's content
  addRegion(p, end, MiB, 0);
  const d = await VhdxDisk.open(p);
  for (let i = 0; i < 8; i++) await d.write(filled(MiB, i), i * MiB);
  await d.close();
  assert.deepEqual(readAt(p, end, MiB), filled(MiB, 0xc3), 'unknown region overwritten');
  assert.deepEqual(await read(p, 7 * MiB, 4096), filled(4096, 7));

  const q = await dynamic();
  addRegion(q, statSync(q).size, MiB, 1);
  await assert.rejects(VhdxDisk.open(q, { readOnly: true }), corruptErr(/required but unknown/));

  const o = await dynamic();
  addRegion(o, region(o, BAT_GUID_BYTES).offset, MiB, 0);
  await assert.rejects(VhdxDisk.open(o, { readOnly: true }), corruptErr(/overlap/));

  // 64 MiB at 1 MiB blocks needs 64 entries; a 4 GiB size in the same 1 MiB region needs 4096+ entries.
  const s = fresh();
  await (await VhdxDisk.create(s, { size: 200 * 1024 * MiB, type: 'dynamic', blockSize: MiB })).close();
  const md = region(s, META_GUID_BYTES).offset;
  const t = readAt(s, md, 64 * 1024);
  for (let i = 0; i < dv(t).getUint16(10, true); i++) {
    const e = 32 + i * 32;
    if (t[e] === 0x24 && t[e + 1] === 0x42) {
      // Virtual Disk Size item (2FA54224-…): claim 400 GiB, which needs a bigger BAT than the region holds.
      const v = new Uint8Array(8);
      dv(v).setBigUint64(0, 400n * 1024n * 1024n * 1024n, true);
      writeAt(s, md + dv(t).getUint32(e + 16, true), v);
    }
  }
  await assert.rejects(VhdxDisk.open(s, { readOnly: true }), corruptErr(/BAT region .* too small/));
});

/** Patches metadata table entry `i` of file `p` with `fn` (table header is 32 bytes, entries 32). */
function patchMetaEntry(p: string, fn: (t: Uint8Array, entryAt: number, count: number) => void): void {
  const md = region(p, META_GUID_BYTES).offset;
  const t = readAt(p, md, 64 * 1024);
  fn(t, 32, dv(t).getUint16(10, true));
  writeAt(p, md, t);
}

test('23: metadata: unknown required item refused; user items and a Length-0 item accepted; duplicates and low offsets refused', async () => {
  const addItem = (p: string, guidByte: number, flags: number, offset: number, length: number) =>
    patchMetaEntry(p, (t, _first, count) => {
      const e = 32 + count * 32;
      t.fill(guidByte, e, e + 16);
      dv(t).setUint32(e + 16, offset, true);
      dv(t).setUint32(e + 20, length, true);
      dv(t).setUint32(e + 24, flags, true);
      dv(t).setUint16(10, count + 1, true);
    });
  const a = await dynamic();
  addItem(a, 0x71, 4, 0, 0);
  await assert.rejects(VhdxDisk.open(a, { readOnly: true }), corruptErr(/required but unknown/));
  const b = await dynamic();
  addItem(b, 0x72, 1 | 4, 512 * 1024, 16); // IsUser|IsRequired: user items are opaque to us
  addItem(b, 0x73, 0, 0, 0); // Length 0: present but empty
  assert.deepEqual(await read(b, 0, 4096), filled(4096, 0x5a));
  const c = await dynamic();
  patchMetaEntry(c, (t, first, count) => {
    t.copyWithin(32 + count * 32, first, first + 32); // duplicate of the first item
    dv(t).setUint16(10, count + 1, true);
  });
  await assert.rejects(VhdxDisk.open(c, { readOnly: true }), corruptErr(/twice|overlap/));
  const d = await dynamic();
  patchMetaEntry(d, (t, first) => dv(t).setUint32(first + 16, 4096, true));
  await assert.rejects(VhdxDisk.open(d, { readOnly: true }), corruptErr(/below 64 KiB/));
});

test('25: defaults are 512e (logical 512, physical 4096) with 32 MiB blocks; 4 KiB native can be asked for', async () => {
  const p = fresh();
  const d = await VhdxDisk.create(p, { size: 256 * MiB, type: 'dynamic' });
  assert.equal(d.logicalSectorSize, 512);
  assert.equal(d.physicalSectorSize, 4096);
  assert.equal((await d.info()).BlockSize, 32 * MiB);
  await d.close();
  const q = fresh();
  const e = await VhdxDisk.create(q, { size: 256 * MiB, type: 'dynamic', logicalSectorSize: 4096 });
  assert.equal(e.logicalSectorSize, 4096);
  await assert.rejects(e.read(new Uint8Array(512), 0), (x) => isHvError(x, 'HV_ERR_INVALID_ARGUMENT'));
  await e.close();
});

test('26: BAT entry counts and interleave at chunk boundaries (MS-VHDX §2.5 formulas)', async () => {
  // 512-byte sectors, 1 MiB blocks: ChunkRatio 4096. Dynamic: P + ⌊(P−1)/4096⌋; differencing: ⌈P/4096⌉·4097.
  const cases: Array<[number, number, number]> = [
    [4095, 4095, 4097],
    [4096, 4096, 4097],
    [4097, 4098, 8194],
    [8193, 8195, 12291],
  ];
  for (const [p, dyn, diff] of cases) {
    assert.equal(batGeometry(p * MiB, MiB, 512, false).totalEntries, dyn, `dynamic ${p}`);
    assert.equal(batGeometry(p * MiB, MiB, 512, true).totalEntries, diff, `differencing ${p}`);
  }
  // 256 MiB blocks: ChunkRatio 16; 4 KiB sectors with 1 MiB blocks: 32768.
  assert.equal(batGeometry(17 * 256 * MiB, 256 * MiB, 512, false).chunkRatio, 16);
  assert.equal(batGeometry(17 * 256 * MiB, 256 * MiB, 512, false).totalEntries, 18);
  assert.equal(batGeometry(MiB, MiB, 4096, false).chunkRatio, 32768);
  // A real file: block 4096 is the first of chunk 1, so its entry sits at index 4097 (4096 is chunk 0's bitmap).
  const f = fresh();
  const d = await VhdxDisk.create(f, { size: 4097 * MiB, type: 'dynamic', blockSize: MiB });
  await d.write(filled(4096, 0xe1), 4096 * MiB);
  await d.write(filled(4096, 0xe2), 4095 * MiB);
  await d.close();
  assert.equal(batEntry(f, 4097)[0], 6);
  assert.equal(batEntry(f, 4095)[0], 6);
  assert.deepEqual(batEntry(f, 4096), [0, 0]);
  assert.deepEqual(await read(f, 4096 * MiB, 4096), filled(4096, 0xe1));
});

test('27: block states in a dynamic file: NOT_PRESENT/UNDEFINED/ZERO/UNMAPPED/5 read zeros; PARTIALLY_PRESENT and bitmap entries refused', async () => {
  const p = await dynamic();
  const [, at] = batEntry(p, 0);
  for (const st of [0, 1, 2, 3, 5]) {
    setBatEntry(p, 0, st, 0);
    assert.deepEqual(await read(p, 0, 4096), filled(4096, 0), `state ${st}`);
  }
  setBatEntry(p, 0, 7, at);
  await assert.rejects(VhdxDisk.open(p, { readOnly: true }), corruptErr(/PARTIALLY_PRESENT/));
  setBatEntry(p, 0, 6, at);
  const q = await dynamic(4097 * MiB);
  setBatEntry(q, 4096, 6, 4 * MiB); // chunk 0's sector-bitmap entry: must be NOT_PRESENT in a dynamic file
  await assert.rejects(VhdxDisk.open(q, { readOnly: true }), corruptErr(/sector bitmap entry 4096/));
  const c = await checkVhdx(q, { repair: true });
  assert.match(c.repaired.join('\n'), /BAT entry 4096 reset/);
  assert.equal((await checkVhdx(q, { repair: false })).ok, true);
});

test('27: a write into a ZERO block zero-fills the rest of the new block; trim of a whole block writes ZERO with FileOffsetMB 0', async () => {
  const p = await dynamic();
  setBatEntry(p, 0, 2, 0);
  const d = await VhdxDisk.open(p);
  await d.write(filled(512, 0x42), 4096);
  const b = new Uint8Array(MiB);
  await d.read(b, 0);
  assert.deepEqual(b.subarray(4096, 4608), filled(512, 0x42));
  assert.equal(b.filter((x) => x !== 0).length, 512);
  await d.trim(0, MiB);
  await d.close();
  assert.deepEqual(batEntry(p, 0), [2, 0]);
  assert.deepEqual(await read(p, 0, MiB), new Uint8Array(MiB));
});

test('28: size not a multiple of the block size: last sector readable and writable, past the end refused', async () => {
  const p = fresh();
  const size = 10 * MiB + 3 * 512;
  const d = await VhdxDisk.create(p, { size, type: 'dynamic', blockSize: 4 * MiB });
  await d.write(filled(512, 0x3c), size - 512);
  await assert.rejects(d.read(new Uint8Array(512), size), (e) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT'));
  await assert.rejects(d.write(new Uint8Array(1024), size - 512), (e) =>
    isHvError(e, 'HV_ERR_INVALID_ARGUMENT'),
  );
  await d.close();
  assert.deepEqual(await read(p, size - 512, 512), filled(512, 0x3c));
});

test('29/30: differencing chain 3 deep, PARTIALLY_PRESENT with LSB-first bitmaps, ..\\ paths, upper-case linkage, GUID discipline', async () => {
  const sub = join(dir, `chain${n++}`);
  mkdirSync(join(sub, 'kids'), { recursive: true });
  const base = join(sub, 'base.vhdx');
  const mid = join(sub, 'kids', 'mid.vhdx');
  const leaf = join(sub, 'kids', 'leaf.vhdx');
  const b = await VhdxDisk.create(base, { size: 16 * MiB, type: 'dynamic', blockSize: MiB });
  await b.write(filled(2 * MiB, 0xb0), 0);
  await b.close();
  const baseHeader = headerFields(base, currentHeader(base)).dataWrite;
  const m = await VhdxDisk.create(mid, { size: 0, type: 'differencing', parentPath: base });
  assert.equal(m.size, 16 * MiB);
  assert.equal(m.blockSize, 2 * MiB, 'differencing default block size');
  await m.write(filled(512, 0xb1), 512); // sector 1 of block 0
  await m.close();
  const l = await VhdxDisk.create(leaf, { size: 24 * MiB, type: 'differencing', parentPath: mid });
  const before = headerFields(leaf, currentHeader(leaf)).dataWrite;
  await l.write(filled(1024, 0xb2), 3 * 512); // sectors 3–4
  const once = headerFields(leaf, currentHeader(leaf)).dataWrite;
  await l.write(filled(512, 0xb3), 20 * MiB); // beyond the parents' size
  assert.notEqual(once, before, 'first write must change DataWriteGuid');
  assert.equal(
    headerFields(leaf, currentHeader(leaf)).dataWrite,
    once,
    'DataWriteGuid changes once per session',
  );
  await l.close();
  assert.equal(
    headerFields(base, currentHeader(base)).dataWrite,
    baseHeader,
    'opening a parent changed its DataWriteGuid',
  );
  // Leaf block 0 is PARTIALLY_PRESENT; chunk 0's bitmap has bits 3 and 4 of byte 0 set (LSB first).
  assert.equal(batEntry(leaf, 0)[0], 7);
  const geo = batGeometry(24 * MiB, 2 * MiB, 512, true);
  const [sbState, sbAt] = batEntry(leaf, geo.chunkRatio);
  assert.equal(sbState, 6);
  assert.equal(readAt(leaf, sbAt, 1)[0], 0b0001_1000);
  // Upper-case parent_linkage in the leaf's locator (UTF-16LE hex digits a–f → A–F).
  const md = region(leaf, META_GUID_BYTES).offset;
  const meta = readAt(leaf, md, MiB);
  const text = Buffer.from(meta).toString('utf16le');
  const at = text.indexOf('parent_linkage');
  assert.ok(at > 0);
  const up = Buffer.from(
    text.replace(/\{[0-9a-f-]{36}\}/, (g) => g.toUpperCase()),
    'utf16le',
  );
  writeAt(leaf, md, up.subarray(0, MiB));
  assert.match(
    Buffer.from(readAt(leaf, md, MiB)).toString('utf16le'),
    /relative_path..\.\.\\mid\.vhdx|\.\\mid\.vhdx/,
  );
  const d = await VhdxDisk.open(leaf, { readOnly: true });
  const got = new Uint8Array(4096);
  await d.read(got, 0);
  const want = filled(4096, 0xb0);
  want.fill(0xb1, 512, 1024);
  want.fill(0xb2, 1536, 2560);
  assert.deepEqual(got, want);
  const far = new Uint8Array(1024);
  await d.read(far, 20 * MiB - 512);
  assert.deepEqual(far.subarray(0, 512), filled(512, 0), 'beyond the parent reads zeros');
  assert.deepEqual(far.subarray(512), filled(512, 0xb3));
  assert.equal((await d.info()).ParentPath, mid);
  await d.close();
});

test('29: parent missing, parent modified (linkage mismatch) and a cyclic chain give clear errors', async () => {
  const base = fresh();
  await (await VhdxDisk.create(base, { size: 8 * MiB, type: 'dynamic', blockSize: MiB })).close();
  const child = fresh();
  await (await VhdxDisk.create(child, { size: 0, type: 'differencing', parentPath: base })).close();
  const bd = await VhdxDisk.open(base);
  await bd.write(filled(512, 1), 0);
  await bd.close();
  await assert.rejects(VhdxDisk.open(child, { readOnly: true }), corruptErr(/DataWriteGuid .* expects/));
  rmSync(base);
  await assert.rejects(
    VhdxDisk.open(child, { readOnly: true }),
    (e) => isHvError(e, 'HV_ERR_NOT_FOUND') && /parent disk not found/.test((e as Error).message),
  );
  // Cycle: a child whose relative_path names itself.
  const a = fresh();
  const b = fresh();
  await (await VhdxDisk.create(a, { size: 8 * MiB, type: 'dynamic', blockSize: MiB })).close();
  await (await VhdxDisk.create(b, { size: 0, type: 'differencing', parentPath: a })).close();
  const md = region(b, META_GUID_BYTES).offset;
  const text = Buffer.from(readAt(b, md, MiB)).toString('latin1');
  const aName = Buffer.from(a.split('/').pop()!, 'utf16le').toString('latin1');
  const bName = Buffer.from(b.split('/').pop()!, 'utf16le').toString('latin1');
  writeAt(b, md, Buffer.from(text.replaceAll(aName, bName), 'latin1'));
  await assert.rejects(VhdxDisk.open(b, { readOnly: true }), corruptErr(/cyclic/));
});

test('31: fixed VHDX keeps its blocks on trim; an mkimg-style file (zero GUIDs, Required=0, all FULLY_PRESENT) opens', async () => {
  const p = fresh();
  const d = await VhdxDisk.create(p, { size: 8 * MiB, type: 'fixed', blockSize: MiB });
  assert.equal(d.type, 'Fixed');
  await d.write(filled(MiB, 0x1f), MiB);
  await d.trim(0, 8 * MiB);
  await d.close();
  for (let b = 0; b < 8; b++) assert.equal(batEntry(p, b)[0], 6);
  assert.deepEqual(await read(p, MiB, 4096), new Uint8Array(4096));
  // mkimg: LeaveBlockAllocated 0 with all FULLY_PRESENT, zero GUIDs, Required = 0.
  const q = fresh();
  const e = await VhdxDisk.create(q, { size: 8 * MiB, type: 'fixed', blockSize: MiB });
  await e.write(filled(4096, 0x2e), 0);
  await e.close();
  for (const h of [HEADER1, HEADER2]) {
    writeAt(q, h + 16, new Uint8Array(32));
    reseal(q, h, 4096);
  }
  for (const t of [REGION1, REGION2]) {
    writeAt(q, t + 16 + 28, new Uint8Array(4));
    writeAt(q, t + 48 + 28, new Uint8Array(4));
    reseal(q, t, 64 * 1024);
  }
  const md = region(q, META_GUID_BYTES).offset;
  writeAt(q, md + 64 * 1024 + 4, new Uint8Array(4)); // File Parameters flags: LeaveBlockAllocated = 0
  assert.deepEqual(await read(q, 0, 4096), filled(4096, 0x2e));
});

test('resize: grow (with BAT relocation), shrink refused below data, shrink allowed above it', async () => {
  const p = fresh();
  const d = await VhdxDisk.create(p, { size: 64 * MiB, type: 'dynamic', blockSize: MiB });
  await d.write(filled(4096, 0x61), 10 * MiB);
  await d.resize(300 * 1024 * MiB); // 300 GiB at 1 MiB blocks: 2.4 MB of BAT, more than the 1 MiB region
  await d.write(filled(4096, 0x62), 200 * 1024 * MiB);
  await assert.rejects(d.resize(5 * MiB), (e) => isHvError(e, 'HV_ERR_INVALID_STATE'));
  await d.trim(200 * 1024 * MiB, MiB);
  await d.resize(12 * MiB);
  await d.close();
  const e = await VhdxDisk.open(p, { readOnly: true });
  assert.equal(e.size, 12 * MiB);
  const b = new Uint8Array(4096);
  await e.read(b, 10 * MiB);
  assert.deepEqual(b, filled(4096, 0x61));
  await e.close();
  // The old BAT region and the dropped blocks are now leaked space: a note, not a problem.
  const checked = await checkVhdx(p, { repair: false });
  assert.equal(checked.ok, true);
  assert.deepEqual(checked.problems, []);
});

test('bad input: not a VHDX, truncated, BAT pointing past EOF or into metadata, absurd arguments', async () => {
  const junk = fresh();
  writeFileSync(junk, filled(8 * MiB, 7));
  await assert.rejects(VhdxDisk.open(junk, { readOnly: true }), corruptErr(/not a VHDX file/));
  const p = await dynamic();
  const t = fresh();
  writeFileSync(t, readAt(p, 0, 2 * MiB));
  await assert.rejects(VhdxDisk.open(t, { readOnly: true }), corruptErr(/truncated/));
  const [, at] = batEntry(p, 0);
  setBatEntry(p, 0, 6, 4096 * MiB);
  await assert.rejects(VhdxDisk.open(p, { readOnly: true }), corruptErr(/past the end/));
  setBatEntry(p, 0, 6, region(p, META_GUID_BYTES).offset);
  await assert.rejects(
    VhdxDisk.open(p, { readOnly: true }),
    corruptErr(/inside the header section, log or a region/),
  );
  const c = await checkVhdx(p, { repair: true });
  assert.equal(c.ok, true, c.problems.join('; '));
  assert.deepEqual(batEntry(p, 0), [0, 0]);
  assert.ok(at > 0);
  await assert.rejects(
    VhdxDisk.create(fresh(), { size: 100, type: 'dynamic' }),
    (e) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT') && /multiple of the 512/.test((e as Error).message),
  );
  await assert.rejects(VhdxDisk.create(fresh(), { size: MiB, type: 'dynamic', blockSize: 3 * MiB }), (e) =>
    isHvError(e, 'HV_ERR_INVALID_ARGUMENT'),
  );
  await assert.rejects(VhdxDisk.create(fresh(), { size: 2 ** 47, type: 'dynamic' }), (e) =>
    isHvError(e, 'HV_ERR_INVALID_ARGUMENT'),
  );
  await assert.rejects(VhdxDisk.create(p, { size: MiB, type: 'dynamic' }), (e) =>
    isHvError(e, 'HV_ERR_ALREADY_EXISTS'),
  );
  await assert.rejects(VhdxDisk.open(join(dir, 'nope.vhdx')), (e) => isHvError(e, 'HV_ERR_NOT_FOUND'));
});

test('concurrent writes into one unallocated block allocate it once and all land (queue depth as the storage VSP uses)', async () => {
  for (const type of ['dynamic', 'differencing'] as const) {
    const base = fresh();
    await (await VhdxDisk.create(base, { size: 8 * MiB, type: 'dynamic', blockSize: MiB })).close();
    const p = type === 'dynamic' ? base : fresh();
    if (type === 'differencing')
      await (await VhdxDisk.create(p, { size: 0, type, parentPath: base, blockSize: MiB })).close();
    const d = await VhdxDisk.open(p);
    await Promise.all(Array.from({ length: 16 }, (_, i) => d.write(filled(4096, i + 1), i * 8192)));
    await d.flush();
    await d.close();
    const got = await read(p, 0, 16 * 8192);
    for (let i = 0; i < 16; i++)
      assert.deepEqual(got.subarray(i * 8192, i * 8192 + 4096), filled(4096, i + 1), `${type} write ${i}`);
    assert.ok(
      statSync(p).size <= 8 * MiB,
      `${type}: block allocated more than once (${statSync(p).size} bytes)`,
    );
  }
});

test('online resize: a grow that moves the BAT waits for writes in flight and holds new ones; every write lands', async () => {
  const p = join(dir, 'online-resize.vhdx');
  const d = await VhdxDisk.create(p, { size: 16 * MiB, type: 'dynamic', blockSize: MiB });
  const twin = new Uint8Array(16 * MiB);
  const writes: Array<Promise<void>> = [];
  const issue = (i: number) => {
    // Each write allocates a new 1 MiB block (or fills one), so BAT entries change while the resize runs.
    const off = ((i * 7) % 16) * MiB + (i % 8) * 4096;
    const data = filled(4096, 1 + (i % 250));
    twin.set(data, off);
    writes.push(d.write(data, off));
  };
  for (let i = 0; i < 40; i++) issue(i);
  // 1 MiB blocks: a 1 MiB BAT region holds 131072 entries (128 GiB); 200 GiB forces the BAT to move.
  const grown = d.resize(200 * 1024 * MiB);
  for (let i = 40; i < 80; i++) issue(i);
  const late = d.write(filled(4096, 0xee), 150 * 1024 * MiB);
  await Promise.all([...writes, grown, late]);
  assert.equal(d.size, 200 * 1024 * MiB);
  await d.close();
  const r = await VhdxDisk.open(p, { readOnly: true });
  const got = new Uint8Array(16 * MiB);
  await r.read(got, 0);
  assert.ok(
    Buffer.from(got).equals(Buffer.from(twin)),
    'every write before and during the resize reads back',
  );
  const tail = new Uint8Array(4096);
  await r.read(tail, 150 * 1024 * MiB);
  assert.ok(tail.every((b) => b === 0xee));
  await r.close();
  execFileSync(requirePeer('qemu-img', 'qemu-utils'), ['check', '-f', 'vhdx', p], { stdio: 'pipe' });
});

test('check: leaked space is a note, a double-referenced block is a problem that repair gives its own copy', async () => {
  const p = join(dir, 'check-leak.vhdx');
  const d = await VhdxDisk.create(p, { size: 8 * MiB, type: 'dynamic', blockSize: MiB });
  await d.write(filled(MiB, 0x31), 0);
  await d.write(filled(MiB, 0x32), MiB);
  await d.write(filled(MiB, 0x33), 2 * MiB);
  await d.trim(MiB, MiB); // block 1 becomes ZERO; its 1 MiB is now referenced by nothing
  await d.close();
  const leak = await checkVhdx(p, { repair: false });
  assert.equal(leak.ok, true);
  assert.deepEqual(leak.problems, []);
  assert.equal(leak.notes.length, 1);
  assert.match(leak.notes[0]!, /^1048576 bytes .*leaked space/);
  // Block 2 now points at block 0's place: both entries own the same MiB.
  const [, off0] = batEntry(p, 0);
  setBatEntry(p, 2, 6, off0);
  const bad = await checkVhdx(p, { repair: false });
  assert.equal(bad.ok, false);
  assert.ok(
    bad.problems.some((m) => /BAT entries 0 and 2 both point into .*double-referenced/.test(m)),
    bad.problems.join('; '),
  );
  await assert.rejects(VhdxDisk.open(p), (e) => isHvError(e) && e.code === 'HV_ERR_CORRUPT');
  const fixed = await checkVhdx(p, { repair: true });
  assert.ok(
    fixed.repaired.some((m) => /BAT entry 2 shared file space/.test(m)),
    fixed.repaired.join('; '),
  );
  assert.equal((await checkVhdx(p, { repair: false })).ok, true);
  const r = await VhdxDisk.open(p);
  const a = new Uint8Array(MiB);
  const b = new Uint8Array(MiB);
  await r.read(a, 0);
  await r.read(b, 2 * MiB);
  assert.ok(a.every((x) => x === 0x31) && b.every((x) => x === 0x31), 'both blocks keep what they read');
  await r.write(filled(4096, 0x44), 2 * MiB);
  await r.read(a, 0);
  assert.ok(
    a.every((x) => x === 0x31),
    'a write through one entry no longer changes the other',
  );
  await r.close();
});
