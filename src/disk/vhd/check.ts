/**
 * `test-vhd` for VHD files: finds every problem instead of stopping at the first (footers, dynamic header,
 * BAT bounds and overlaps, sector bitmaps that hide non-zero data, parent chain), and with `repair`
 * fixes what can be fixed without guessing data: rewrite a damaged footer from its good copy, reseal a
 * header checksum, drop BAT entries that point past the end or into metadata, set bitmap bits over data.
 */
import { HvError, isHvError } from '../../protocol/errors.ts';
import { DiskFile } from '../file-io.ts';
import type { DiskProblem } from '../vhdx-bridge.ts';
import {
  bitmapBytes,
  decodeDynamicHeader,
  dynHeaderChecksumOk,
  encodeDynamicHeader,
  locatorSpaceBytes,
  PLAT_CODE,
  VHD_BAT_UNUSED,
  VHD_DYN_HEADER_SIZE,
} from './dynamic-header.ts';
import { encodeFooter, VHD_DISK_TYPE, VHD_FOOTER_SIZE } from './footer.ts';
import { readFooters } from './vhd-disk.ts';

const SECTOR = 512;

/**
 * Checks (and with `repair`, fixes) the VHD at `path`. `openChain` opens the image with its parents
 * (openDisk) to verify the chain. Returns the problems found; an empty list means clean.
 */
export async function checkVhd(
  path: string,
  opts: { repair: boolean; openChain: (p: string) => Promise<{ close(): Promise<void> }> },
): Promise<DiskProblem[]> {
  const problems: DiskProblem[] = [];
  const file = await DiskFile.open(path, { readOnly: !opts.repair });
  try {
    const loc = await readFooters(file).catch((err: unknown) => {
      if (isHvError(err, 'HV_ERR_CORRUPT')) {
        problems.push({ code: 'footer', message: err.message, repaired: false });
        return null;
      }
      throw err;
    });
    if (!loc) return problems;
    const footer = loc.footer;
    let footerOffset = loc.footerOffset;
    const fileSize = await file.size();
    if (footer.savedState)
      problems.push({
        code: 'saved-state',
        message: 'the disk is in a saved state: resize and compact are refused',
        repaired: false,
      });
    if (footer.diskType === VHD_DISK_TYPE.FIXED) return problems;
    const off = footer.dataOffset;
    if (off === null || off + VHD_DYN_HEADER_SIZE > fileSize) {
      problems.push({
        code: 'dynamic-header',
        message: `dynamic header offset ${off ?? 'none'} lies outside the file`,
        repaired: false,
      });
      return problems;
    }
    const raw = new Uint8Array(VHD_DYN_HEADER_SIZE);
    await file.readExact(raw, off, 'dynamic disk header');
    let header: ReturnType<typeof decodeDynamicHeader>;
    try {
      header = decodeDynamicHeader(raw);
    } catch (err) {
      problems.push({ code: 'dynamic-header', message: (err as Error).message, repaired: false });
      return problems;
    }
    if (!dynHeaderChecksumOk(raw)) {
      const p = {
        code: 'dynamic-header-checksum',
        message: 'dynamic disk header checksum mismatch',
        repaired: false,
      };
      if (opts.repair) {
        await file.writeAt(encodeDynamicHeader(header), off);
        p.repaired = true;
      }
      problems.push(p);
    }
    const bs = header.blockSize;
    if (bs < SECTOR || (bs & (bs - 1)) !== 0) {
      problems.push({
        code: 'block-size',
        message: `block size ${bs} is not a power of two of at least 512`,
        repaired: false,
      });
      return problems;
    }
    const batBytes = header.maxTableEntries * 4;
    if (header.tableOffset + batBytes > fileSize) {
      problems.push({
        code: 'bat-bounds',
        message: `BAT (${batBytes} bytes at ${header.tableOffset}) runs past the end of the file`,
        repaired: false,
      });
      return problems;
    }
    if (header.maxTableEntries * bs < footer.currentSize) {
      problems.push({
        code: 'bat-too-small',
        message: `BAT covers ${header.maxTableEntries * bs} bytes, the disk is ${footer.currentSize}`,
        repaired: false,
      });
    }
    const batRaw = new Uint8Array(batBytes);
    await file.readExact(batRaw, header.tableOffset, 'BAT');
    const dv = new DataView(batRaw.buffer);
    const bitmap = bitmapBytes(bs);
    const meta: [number, number][] = [
      [0, VHD_FOOTER_SIZE],
      [off, off + VHD_DYN_HEADER_SIZE],
      [header.tableOffset, header.tableOffset + Math.ceil(batBytes / SECTOR) * SECTOR],
    ];
    for (const l of header.locators) {
      if (l.platformCode !== PLAT_CODE.NONE && l.platformDataLength > 0)
        meta.push([l.platformDataOffset, l.platformDataOffset + locatorSpaceBytes(l)]);
    }
    const dataLimit = loc.trailingOk ? footerOffset : fileSize;
    const used: [number, number, number][] = [];
    let batDirty = false;
    for (let i = 0; i < header.maxTableEntries; i++) {
      const e = dv.getUint32(i * 4);
      if (e === VHD_BAT_UNUSED) continue;
      const start = e * SECTOR;
      const end = start + bitmap + bs;
      let why = '';
      if (end > dataLimit)
        why = `block ${i} at byte ${start} runs past the end of the data (truncated image or bad BAT entry)`;
      else if (meta.some(([a, b]) => start < b && end > a))
        why = `BAT entry ${i} points into metadata at byte ${start}`;
      else if (used.some(([a, b]) => start < b && end > a))
        why = `block ${i} overlaps another block at byte ${start}`;
      if (why) {
        const p = { code: 'bat-entry', message: why, repaired: false };
        if (opts.repair) {
          dv.setUint32(i * 4, VHD_BAT_UNUSED);
          batDirty = p.repaired = true;
        }
        problems.push(p);
        continue;
      }
      used.push([start, end, i]);
    }
    if (batDirty) await file.writeAt(batRaw, header.tableOffset);
    if (footer.diskType === VHD_DISK_TYPE.DYNAMIC) {
      const bm = new Uint8Array(bitmap);
      const data = new Uint8Array(bs);
      for (const [start, , i] of used) {
        await file.readExact(bm, start, 'sector bitmap');
        await file.readExact(data, start + bitmap, 'data block');
        let hidden = 0;
        for (let s = 0; s < bs / SECTOR; s++) {
          if (bm[s >> 3]! & (0x80 >> (s & 7))) continue;
          if (data.subarray(s * SECTOR, (s + 1) * SECTOR).some((x) => x !== 0)) {
            hidden++;
            bm[s >> 3]! |= 0x80 >> (s & 7);
          }
        }
        if (hidden > 0) {
          const p = {
            code: 'bitmap-hides-data',
            message: `block ${i}: ${hidden} sectors hold data but their bitmap bits are clear (libvhdi reads them as zeros)`,
            repaired: false,
          };
          if (opts.repair) {
            await file.writeAt(bm, start);
            p.repaired = true;
          }
          problems.push(p);
        }
      }
    }
    const dataEnd = Math.max(...meta.map((m) => m[1]), ...used.map((u) => u[1]));
    if (!loc.trailingOk) {
      const p = {
        code: 'footer-damaged',
        message: `the footer at the end of the file is damaged (${loc.problem}); the copy at offset 0 is good`,
        repaired: false,
      };
      if (opts.repair) {
        footerOffset = dataEnd;
        await file.writeAt(encodeFooter(footer), footerOffset);
        await file.truncate(footerOffset + VHD_FOOTER_SIZE);
        p.repaired = true;
      }
      problems.push(p);
    } else if (!loc.copyOk) {
      const p = { code: 'footer-copy', message: 'the footer copy at offset 0 is damaged', repaired: false };
      if (opts.repair) {
        await file.writeAt(encodeFooter(footer), 0);
        p.repaired = true;
      }
      problems.push(p);
    }
    if (footerOffset > dataEnd) {
      problems.push({
        code: 'leaked-space',
        message: `${footerOffset - dataEnd} bytes before the footer belong to no block (optimize-vhd reclaims them)`,
        repaired: false,
      });
    }
    if (opts.repair) await file.sync();
  } finally {
    await file.close();
  }
  if (problems.every((p) => p.repaired || p.code === 'leaked-space' || p.code === 'saved-state')) {
    try {
      const dev = await opts.openChain(path);
      await dev.close();
    } catch (err) {
      if (!(err instanceof HvError)) throw err;
      problems.push({
        code: err.code === 'HV_ERR_NOT_FOUND' ? 'parent-missing' : 'open',
        message: err.message,
        repaired: false,
      });
    }
  }
  return problems;
}
