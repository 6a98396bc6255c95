/**
 * Optimize-VHD for dynamic and differencing VHDs: rewrites the file without unreferenced space and
 * without blocks that hold nothing (dynamic: all-zero data; differencing: no bitmap bit set). Identity
 * (unique id, parent linkage, locators) is kept, so children stay valid. Built under a temp name and
 * renamed over the original.
 */
import { HvError } from '../../protocol/errors.ts';
import { DiskFile, isZero, publishTemp, removeQuietly, tempPathFor } from '../file-io.ts';
import type { Progress } from '../ops/progress.ts';
import {
  bitmapBytes,
  encodeDynamicHeader,
  locatorSpaceBytes,
  PLAT_CODE,
  VHD_BAT_UNUSED,
} from './dynamic-header.ts';
import { encodeFooter, VHD_DISK_TYPE, VHD_FOOTER_SIZE } from './footer.ts';
import { readDynamic, readFooters } from './vhd-disk.ts';

const SECTOR = 512;

/** Compacts `path` in place; returns bytes saved. @throws HvError HV_ERR_INVALID_ARGUMENT (fixed), HV_ERR_INVALID_STATE (saved state). */
export async function compactVhd(path: string, progress?: Progress): Promise<number> {
  const src = await DiskFile.open(path, { readOnly: true });
  const temp = tempPathFor(path);
  let dst: DiskFile | null = null;
  try {
    const loc = await readFooters(src);
    if (!loc.trailingOk)
      throw new HvError('HV_ERR_CORRUPT', `${path}: damaged footer; run 'hvis test-vhd --repair' first`);
    const footer = loc.footer;
    if (footer.diskType === VHD_DISK_TYPE.FIXED)
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `${path} is a fixed VHD; only dynamic and differencing disks can be compacted`,
      );
    if (footer.savedState)
      throw new HvError('HV_ERR_INVALID_STATE', `${path} is in a saved state; compaction is not allowed`);
    const before = await src.size();
    const { header, bat, metadataEnd } = await readDynamic(src, footer, loc.footerOffset, footer.currentSize);
    const bs = header.blockSize;
    const bitmap = bitmapBytes(bs);
    dst = await DiskFile.open(temp, { create: true, exclusive: true });
    // Metadata (footer copy, header, BAT, locators) keeps its offsets; blocks follow in virtual order.
    const head = new Uint8Array(metadataEnd);
    await src.readExact(head, 0, 'VHD metadata');
    await dst.writeAt(head, 0);
    let at = Math.ceil(metadataEnd / SECTOR) * SECTOR;
    const newBat = new Uint32Array(bat.length).fill(VHD_BAT_UNUSED);
    const block = new Uint8Array(bitmap + bs);
    const diff = footer.diskType === VHD_DISK_TYPE.DIFFERENCING;
    for (let i = 0; i < bat.length; i++) {
      const e = bat[i]!;
      progress?.(i + 1, bat.length);
      if (e === VHD_BAT_UNUSED) continue;
      await src.readExact(block, e * SECTOR, `block ${i}`);
      const empty = diff ? isZero(block, 0, bitmap) : isZero(block, bitmap, bs);
      if (empty) continue;
      await dst.writeAt(block, at);
      newBat[i] = at / SECTOR;
      at += block.length;
    }
    const batBytes = Math.ceil((bat.length * 4) / SECTOR) * SECTOR;
    const batRaw = new Uint8Array(batBytes).fill(0xff);
    const dv = new DataView(batRaw.buffer);
    for (let i = 0; i < newBat.length; i++) dv.setUint32(i * 4, newBat[i]!);
    await dst.writeAt(batRaw, header.tableOffset);
    await dst.writeAt(encodeDynamicHeader(header), footer.dataOffset!);
    for (const l of header.locators) {
      if (
        l.platformCode !== PLAT_CODE.NONE &&
        locatorSpaceBytes(l) > 0 &&
        l.platformDataOffset >= metadataEnd
      ) {
        throw new HvError('HV_ERR_CORRUPT', `${path}: a parent locator lies outside the metadata area`);
      }
    }
    await dst.writeAt(encodeFooter(footer), 0);
    await dst.writeAt(encodeFooter(footer), at);
    await dst.close();
    dst = null;
    await src.close();
    await publishTemp(temp, path);
    return before - (at + VHD_FOOTER_SIZE);
  } catch (err) {
    await dst?.close();
    await removeQuietly(temp);
    throw err;
  } finally {
    await src.close();
  }
}
