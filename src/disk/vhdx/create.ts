/**
 * Creates VHDX files with the layout Hyper-V uses: header section (file identifier, two headers, two region
 * tables) in the first MiB, a 1 MiB log at 1 MiB, a 1 MiB metadata region at 2 MiB, the BAT at 3 MiB, payload
 * after it. The file is built under a temporary name, fsynced and renamed, so a crash leaves no half file.
 * Defaults as New-VHD: dynamic/fixed 32 MiB blocks, differencing 2 MiB blocks, 512-byte logical and 4096-byte
 * physical sectors (512e); a differencing child inherits size, logical sector size and Virtual Disk ID.
 */
import { access, rename, unlink } from 'node:fs/promises';
import { basename, dirname, relative, resolve } from 'node:path';
import { HvError } from '../../protocol/errors.ts';
import { Guid } from '../../protocol/guid.ts';
import { batGeometry, payloadIndex, setEntry } from './bat.ts';
import {
  encodeFileIdentifier,
  encodeHeader,
  encodeRegionTable,
  MiB,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  VHDX_BAT_REGION_GUID,
  VHDX_HEADER1_OFFSET,
  VHDX_HEADER2_OFFSET,
  VHDX_MAX_BLOCK_SIZE,
  VHDX_MAX_DISK_SIZE,
  VHDX_METADATA_REGION_GUID,
  VHDX_MIN_BLOCK_SIZE,
  VHDX_REGION_TABLE1_OFFSET,
  VHDX_REGION_TABLE2_OFFSET,
} from './format.ts';
import { ImageFile } from './image-file.ts';
import { encodeMetadata, encodeParentLocator } from './metadata.ts';
import { VhdxDisk } from './vhdx-disk.ts';

export interface VhdxCreateOptions {
  /** Virtual size in bytes (differencing: defaults to the parent's). */
  size: number;
  type: 'fixed' | 'dynamic' | 'differencing';
  /** Bytes, power of two between 1 MiB and 256 MiB. */
  blockSize?: number;
  logicalSectorSize?: 512 | 4096;
  physicalSectorSize?: 512 | 4096;
  parentPath?: string;
}

export const DEFAULT_BLOCK_SIZE = 32 * MiB;
export const DEFAULT_DIFFERENCING_BLOCK_SIZE = 2 * MiB;
const LOG_OFFSET = MiB;
const LOG_LENGTH = MiB;
const METADATA_OFFSET = 2 * MiB;
const METADATA_LENGTH = MiB;
const BAT_OFFSET = 3 * MiB;

function invalid(message: string): never {
  throw new HvError('HV_ERR_INVALID_ARGUMENT', message);
}

/**
 * Creates `path` and returns it opened read-write.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` (size, block or sector size out of range, missing parent path),
 * `HV_ERR_ALREADY_EXISTS`, `HV_ERR_NOT_FOUND` (parent), `HV_ERR_CORRUPT` (parent unreadable).
 */
export async function createVhdx(path: string, opts: VhdxCreateOptions): Promise<VhdxDisk> {
  const diff = opts.type === 'differencing';
  if (!['fixed', 'dynamic', 'differencing'].includes(opts.type))
    invalid(`type '${opts.type}' must be fixed, dynamic or differencing`);
  let size = opts.size;
  let lss: number = opts.logicalSectorSize ?? 512;
  let page83 = Guid.random();
  let locator: Uint8Array | null = null;
  if (diff) {
    if (!opts.parentPath) invalid('a differencing disk needs --parent-path');
    const parent = await VhdxDisk.open(opts.parentPath, { readOnly: true });
    try {
      if (opts.logicalSectorSize !== undefined && opts.logicalSectorSize !== parent.logicalSectorSize) {
        invalid(`a differencing disk keeps its parent's ${parent.logicalSectorSize}-byte logical sectors`);
      }
      lss = parent.logicalSectorSize;
      size = size || parent.size;
      if (size < parent.size)
        invalid(`a differencing disk cannot be smaller than its parent (${parent.size} bytes)`);
      page83 = parent.diskIdentifier;
      const abs = resolve(opts.parentPath);
      let rel = relative(dirname(resolve(path)), abs).replaceAll('/', '\\');
      if (!rel.startsWith('..')) rel = `.\\${rel}`;
      locator = encodeParentLocator([
        ['parent_linkage', `{${parent.dataWriteGuid}}`],
        ['relative_path', rel],
        ['absolute_win32_path', abs.replaceAll('/', '\\')],
      ]);
    } finally {
      await parent.close();
    }
  }
  const pss = opts.physicalSectorSize ?? 4096;
  const bs = opts.blockSize ?? (diff ? DEFAULT_DIFFERENCING_BLOCK_SIZE : DEFAULT_BLOCK_SIZE);
  if (lss !== 512 && lss !== 4096) invalid(`logical sector size ${lss} must be 512 or 4096`);
  if (pss !== 512 && pss !== 4096) invalid(`physical sector size ${pss} must be 512 or 4096`);
  if (
    !Number.isSafeInteger(bs) ||
    bs < VHDX_MIN_BLOCK_SIZE ||
    bs > VHDX_MAX_BLOCK_SIZE ||
    (bs & (bs - 1)) !== 0
  ) {
    invalid(`block size ${bs} must be a power of two between 1 MiB and 256 MiB`);
  }
  if (!Number.isSafeInteger(size) || size <= 0 || size > VHDX_MAX_DISK_SIZE)
    invalid(`size ${size} must be between 1 byte and 64 TiB`);
  if (size % lss !== 0) invalid(`size ${size} must be a multiple of the ${lss}-byte logical sector size`);

  const geo = batGeometry(size, bs, lss, diff);
  const batLength = Math.ceil((geo.totalEntries * 8) / MiB) * MiB;
  const dataStart = BAT_OFFSET + batLength;
  const bat = new Uint8Array(batLength);
  const batDv = new DataView(bat.buffer);
  let end = dataStart;
  if (opts.type === 'fixed') {
    for (let b = 0; b < geo.payloadBlocks; b++) {
      setEntry(batDv, payloadIndex(geo, b), PAYLOAD_BLOCK_FULLY_PRESENT, end / MiB);
      end += bs;
    }
  }
  const tmp = `${dirname(path)}/.${basename(path)}.${process.pid}.tmp`;
  try {
    await access(path);
    throw new HvError(
      'HV_ERR_ALREADY_EXISTS',
      `${path} already exists; choose another path or delete it first`,
    );
  } catch (e) {
    if (e instanceof HvError) throw e;
  }
  const f = await ImageFile.create(tmp);
  try {
    await f.write(encodeFileIdentifier('hvis'), 0);
    const header = {
      sequenceNumber: 1n,
      fileWriteGuid: Guid.random(),
      dataWriteGuid: Guid.random(),
      logGuid: Guid.NIL,
      logVersion: 0,
      version: 1,
      logLength: LOG_LENGTH,
      logOffset: LOG_OFFSET,
    };
    await f.write(encodeHeader(header), VHDX_HEADER1_OFFSET);
    await f.write(encodeHeader({ ...header, sequenceNumber: 2n }), VHDX_HEADER2_OFFSET);
    const table = encodeRegionTable([
      { guid: VHDX_BAT_REGION_GUID, fileOffset: BAT_OFFSET, length: batLength, required: true },
      {
        guid: VHDX_METADATA_REGION_GUID,
        fileOffset: METADATA_OFFSET,
        length: METADATA_LENGTH,
        required: true,
      },
    ]);
    await f.write(table, VHDX_REGION_TABLE1_OFFSET);
    await f.write(table, VHDX_REGION_TABLE2_OFFSET);
    const meta = encodeMetadata(
      {
        blockSize: bs,
        leaveBlockAllocated: opts.type === 'fixed',
        virtualDiskSize: size,
        page83Data: page83,
        logicalSectorSize: lss,
        physicalSectorSize: pss,
        parentLocator: locator,
      },
      METADATA_LENGTH,
    );
    await f.write(meta, METADATA_OFFSET);
    await f.write(bat, BAT_OFFSET);
    await f.truncate(end);
    await f.sync();
    await f.close();
    await rename(tmp, path);
  } catch (e) {
    await f.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  return VhdxDisk.open(path);
}
