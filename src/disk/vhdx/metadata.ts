/**
 * VHDX metadata region: the table, the system items and the parent locator.
 * Sources: [MS-VHDX] §2.6 (metadata region), §2.6.1.2 (entry), §2.6.2.1–§2.6.2.6 (items), §2.6.2.6.3 (VHDX
 * parent locator keys); QEMU block/vhdx.h (`VHDXMetadataTableHeader`, `VHDXMetadataTableEntry`,
 * `VHDXFileParameters`, `VHDXParentLocatorHeader`, `VHDXParentLocatorEntry`).
 */
import { Guid } from '../../protocol/guid.ts';
import {
  corrupt,
  KiB,
  MiB,
  readU64,
  VHDX_MAX_BLOCK_SIZE,
  VHDX_MAX_DISK_SIZE,
  VHDX_MIN_BLOCK_SIZE,
  writeU64,
} from './format.ts';

export const VHDX_METADATA_SIGNATURE = 'metadata';
/** The table occupies the first 64 KiB of the region; items start at or after it. */
export const VHDX_METADATA_TABLE_SIZE = 64 * KiB;
export const VHDX_METADATA_ENTRY_MAX = 2047;
export const VHDX_METADATA_ITEM_MAX = MiB;

export const FILE_PARAMETERS_GUID = Guid.parse('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
export const VIRTUAL_DISK_SIZE_GUID = Guid.parse('2FA54224-CD1B-4876-B211-5DBED83BF4B8');
/** "Page 83 Data" in the v1.00 spec, "Virtual Disk ID" in MS-VHDX. */
export const PAGE83_DATA_GUID = Guid.parse('BECA12AB-B2E6-4523-93EF-C309E000C746');
export const LOGICAL_SECTOR_SIZE_GUID = Guid.parse('8141BF1D-A96F-4709-BA47-F233A8FAAB5F');
export const PHYSICAL_SECTOR_SIZE_GUID = Guid.parse('CDA348C7-445D-4471-9CC9-E9885251C556');
export const PARENT_LOCATOR_GUID = Guid.parse('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C');
/** LocatorType of the only defined parent locator, the VHDX one [MS-VHDX] §2.6.2.6.3. */
export const VHDX_PARENT_LOCATOR_TYPE = Guid.parse('B04AEFB7-D19E-4A81-B789-25B8E9445913');

const SYSTEM_ITEMS = [
  FILE_PARAMETERS_GUID,
  VIRTUAL_DISK_SIZE_GUID,
  PAGE83_DATA_GUID,
  LOGICAL_SECTOR_SIZE_GUID,
  PHYSICAL_SECTOR_SIZE_GUID,
  PARENT_LOCATOR_GUID,
];

/** Metadata table entry flag bits (offset 24 of the entry). */
export const METADATA_IS_USER = 1;
export const METADATA_IS_VIRTUAL_DISK = 2;
export const METADATA_IS_REQUIRED = 4;

/**
 * One metadata table entry (32 bytes): 0 ItemId · 16 Offset u32 (from region start, >= 64 KiB) · 20 Length u32
 * (<= 1 MiB) · 24 flags u32 (IsUser, IsVirtualDisk, IsRequired) · 28 reserved.
 */
export interface MetadataEntry {
  itemId: Guid;
  offset: number;
  length: number;
  flags: number;
}

/** The parsed system items of a VHDX file. */
export interface VhdxMetadata {
  entries: MetadataEntry[];
  /** Bytes, power of two in [1 MiB, 256 MiB]. */
  blockSize: number;
  leaveBlockAllocated: boolean;
  hasParent: boolean;
  /** Virtual size in bytes. */
  virtualDiskSize: number;
  page83Data: Guid;
  logicalSectorSize: 512 | 4096;
  physicalSectorSize: 512 | 4096;
  /** Key/value pairs of the parent locator (keys as stored), or null when absent. */
  parentLocator: Map<string, string> | null;
  /** Byte offset of the Virtual Disk Size item inside the region (resize rewrites it). */
  virtualDiskSizeOffset: number;
}

function dvOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Decodes the metadata table and the system items from the whole metadata region `region`.
 * @throws HvError `HV_ERR_CORRUPT` on any rule of [MS-VHDX] §2.6 broken: bad signature, too many entries, an
 * item outside the region or below 64 KiB, overlapping or duplicated items, an unknown required item, a
 * missing or malformed system item.
 */
export function decodeMetadata(region: Uint8Array): VhdxMetadata {
  if (region.length < VHDX_METADATA_TABLE_SIZE)
    corrupt('VHDX metadata region is smaller than its 64 KiB table');
  const dv = dvOf(region);
  for (let i = 0; i < 8; i++) {
    if (region[i] !== VHDX_METADATA_SIGNATURE.charCodeAt(i))
      corrupt("VHDX metadata table signature is not 'metadata'");
  }
  const count = dv.getUint16(10, true);
  if (count > VHDX_METADATA_ENTRY_MAX)
    corrupt(`VHDX metadata EntryCount ${count} exceeds ${VHDX_METADATA_ENTRY_MAX}`);
  const entries: MetadataEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = 32 + i * 32;
    const e: MetadataEntry = {
      itemId: Guid.read(region, o),
      offset: dv.getUint32(o + 16, true),
      length: dv.getUint32(o + 20, true),
      flags: dv.getUint32(o + 24, true),
    };
    if (e.length === 0) {
      if (e.offset !== 0) corrupt(`VHDX metadata item ${e.itemId} has Length 0 but Offset ${e.offset}`);
    } else {
      if (e.offset < VHDX_METADATA_TABLE_SIZE)
        corrupt(`VHDX metadata item ${e.itemId} Offset ${e.offset} is below 64 KiB`);
      if (e.length > VHDX_METADATA_ITEM_MAX)
        corrupt(`VHDX metadata item ${e.itemId} Length ${e.length} exceeds 1 MiB`);
      if (e.offset + e.length > region.length)
        corrupt(`VHDX metadata item ${e.itemId} lies outside the metadata region`);
    }
    for (const p of entries) {
      if (p.itemId.equals(e.itemId) && (p.flags & METADATA_IS_USER) === (e.flags & METADATA_IS_USER)) {
        corrupt(`VHDX metadata item ${e.itemId} appears twice`);
      }
      if (e.length && p.length && e.offset < p.offset + p.length && p.offset < e.offset + e.length) {
        corrupt(`VHDX metadata items ${p.itemId} and ${e.itemId} overlap`);
      }
    }
    const isUser = (e.flags & METADATA_IS_USER) !== 0;
    if (!isUser && e.flags & METADATA_IS_REQUIRED && !SYSTEM_ITEMS.some((g) => g.equals(e.itemId))) {
      corrupt(`VHDX metadata item ${e.itemId} is required but unknown to this implementation`);
    }
    entries.push(e);
  }
  const item = (id: Guid, size: number, name: string): Uint8Array => {
    const e = entries.find((x) => x.itemId.equals(id) && (x.flags & METADATA_IS_USER) === 0);
    if (!e) corrupt(`VHDX metadata item ${name} is missing`);
    if (size >= 0 ? e.length < size : e.length === 0)
      corrupt(`VHDX metadata item ${name} is too short (${e.length} bytes)`);
    return region.subarray(e.offset, e.offset + e.length);
  };
  const fp = dvOf(item(FILE_PARAMETERS_GUID, 8, 'File Parameters'));
  const blockSize = fp.getUint32(0, true);
  const fpFlags = fp.getUint32(4, true);
  if (
    blockSize < VHDX_MIN_BLOCK_SIZE ||
    blockSize > VHDX_MAX_BLOCK_SIZE ||
    (blockSize & (blockSize - 1)) !== 0
  ) {
    corrupt(`VHDX BlockSize ${blockSize} is not a power of two between 1 MiB and 256 MiB`);
  }
  const sizeBytes = item(VIRTUAL_DISK_SIZE_GUID, 8, 'Virtual Disk Size');
  const virtualDiskSize = readU64(dvOf(sizeBytes), 0, 'VHDX VirtualDiskSize');
  const page83Data = Guid.read(item(PAGE83_DATA_GUID, 16, 'Virtual Disk ID'), 0);
  const lss = dvOf(item(LOGICAL_SECTOR_SIZE_GUID, 4, 'Logical Sector Size')).getUint32(0, true);
  const pss = dvOf(item(PHYSICAL_SECTOR_SIZE_GUID, 4, 'Physical Sector Size')).getUint32(0, true);
  if (lss !== 512 && lss !== 4096) corrupt(`VHDX LogicalSectorSize ${lss} is not 512 or 4096`);
  if (pss !== 512 && pss !== 4096) corrupt(`VHDX PhysicalSectorSize ${pss} is not 512 or 4096`);
  if (virtualDiskSize === 0 || virtualDiskSize > VHDX_MAX_DISK_SIZE || virtualDiskSize % lss !== 0) {
    corrupt(`VHDX VirtualDiskSize ${virtualDiskSize} is not a non-zero multiple of ${lss} up to 64 TiB`);
  }
  const hasParent = (fpFlags & 2) !== 0;
  let parentLocator: Map<string, string> | null = null;
  if (hasParent) parentLocator = decodeParentLocator(item(PARENT_LOCATOR_GUID, -1, 'Parent Locator'));
  const sizeEntry = entries.find((x) => x.itemId.equals(VIRTUAL_DISK_SIZE_GUID))!;
  return {
    entries,
    blockSize,
    leaveBlockAllocated: (fpFlags & 1) !== 0,
    hasParent,
    virtualDiskSize,
    page83Data,
    logicalSectorSize: lss,
    physicalSectorSize: pss,
    parentLocator,
    virtualDiskSizeOffset: sizeEntry.offset,
  };
}

/**
 * Decodes a parent locator item: 20-byte header (LocatorType GUID · Reserved u16 · KeyValueCount u16), then
 * KeyValueCount 12-byte entries (KeyOffset u32 · ValueOffset u32 · KeyLength u16 · ValueLength u16), offsets
 * relative to the item, strings UTF-16LE [MS-VHDX] §2.6.2.6.
 * @throws HvError `HV_ERR_CORRUPT` on an unknown locator type, an entry outside the item, a duplicate key or a
 * missing `parent_linkage`.
 */
export function decodeParentLocator(item: Uint8Array): Map<string, string> {
  if (item.length < 20) corrupt('VHDX parent locator is shorter than its 20-byte header');
  const dv = dvOf(item);
  if (!VHDX_PARENT_LOCATOR_TYPE.matches(item, 0))
    corrupt(`VHDX parent locator type ${Guid.read(item, 0)} is unknown`);
  const count = dv.getUint16(18, true);
  if (20 + count * 12 > item.length)
    corrupt(`VHDX parent locator KeyValueCount ${count} does not fit the item`);
  const kv = new Map<string, string>();
  const str = (off: number, len: number, what: string): string => {
    if (len === 0 || len % 2 !== 0 || off + len > item.length)
      corrupt(`VHDX parent locator ${what} lies outside the item or is odd-sized`);
    let s = '';
    for (let i = 0; i < len; i += 2) s += String.fromCharCode(dv.getUint16(off + i, true));
    return s;
  };
  for (let i = 0; i < count; i++) {
    const o = 20 + i * 12;
    const key = str(dv.getUint32(o, true), dv.getUint16(o + 8, true), 'key');
    const value = str(dv.getUint32(o + 4, true), dv.getUint16(o + 10, true), 'value');
    if (kv.has(key)) corrupt(`VHDX parent locator key '${key}' appears twice`);
    kv.set(key, value);
  }
  if (!kv.has('parent_linkage')) corrupt('VHDX parent locator has no parent_linkage');
  return kv;
}

/** Encodes a VHDX parent locator item from ordered key/value pairs. */
export function encodeParentLocator(pairs: ReadonlyArray<readonly [string, string]>): Uint8Array {
  let size = 20 + pairs.length * 12;
  for (const [k, v] of pairs) size += 2 * (k.length + v.length);
  const b = new Uint8Array(size);
  const dv = dvOf(b);
  VHDX_PARENT_LOCATOR_TYPE.write(b, 0);
  dv.setUint16(18, pairs.length, true);
  let at = 20 + pairs.length * 12;
  const put = (s: string): number => {
    const start = at;
    for (let i = 0; i < s.length; i++) dv.setUint16(at + i * 2, s.charCodeAt(i), true);
    at += s.length * 2;
    return start;
  };
  pairs.forEach(([k, v], i) => {
    const o = 20 + i * 12;
    dv.setUint32(o, put(k), true);
    dv.setUint32(o + 4, put(v), true);
    dv.setUint16(o + 8, k.length * 2, true);
    dv.setUint16(o + 10, v.length * 2, true);
  });
  return b;
}

/** What {@link encodeMetadata} writes into a new file. */
export interface NewMetadata {
  blockSize: number;
  leaveBlockAllocated: boolean;
  virtualDiskSize: number;
  page83Data: Guid;
  logicalSectorSize: number;
  physicalSectorSize: number;
  /** Encoded parent locator item (differencing only). */
  parentLocator: Uint8Array | null;
}

/**
 * Builds a metadata region image of `regionLength` bytes: the table at 0, items packed from 64 KiB, with the
 * flags Hyper-V uses (File Parameters and Parent Locator: IsRequired; the disk items: IsVirtualDisk|IsRequired).
 */
export function encodeMetadata(m: NewMetadata, regionLength: number): Uint8Array {
  const r = new Uint8Array(regionLength);
  const dv = dvOf(r);
  for (let i = 0; i < 8; i++) r[i] = VHDX_METADATA_SIGNATURE.charCodeAt(i);
  const items: Array<[Guid, Uint8Array, number]> = [];
  const fp = new Uint8Array(8);
  dvOf(fp).setUint32(0, m.blockSize, true);
  dvOf(fp).setUint32(4, (m.leaveBlockAllocated ? 1 : 0) | (m.parentLocator ? 2 : 0), true);
  items.push([FILE_PARAMETERS_GUID, fp, METADATA_IS_REQUIRED]);
  const vds = new Uint8Array(8);
  writeU64(dvOf(vds), 0, m.virtualDiskSize);
  items.push([VIRTUAL_DISK_SIZE_GUID, vds, METADATA_IS_VIRTUAL_DISK | METADATA_IS_REQUIRED]);
  items.push([PAGE83_DATA_GUID, m.page83Data.bytes.slice(), METADATA_IS_VIRTUAL_DISK | METADATA_IS_REQUIRED]);
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    dvOf(b).setUint32(0, v, true);
    return b;
  };
  items.push([
    LOGICAL_SECTOR_SIZE_GUID,
    u32(m.logicalSectorSize),
    METADATA_IS_VIRTUAL_DISK | METADATA_IS_REQUIRED,
  ]);
  items.push([
    PHYSICAL_SECTOR_SIZE_GUID,
    u32(m.physicalSectorSize),
    METADATA_IS_VIRTUAL_DISK | METADATA_IS_REQUIRED,
  ]);
  if (m.parentLocator) items.push([PARENT_LOCATOR_GUID, m.parentLocator, METADATA_IS_REQUIRED]);
  dv.setUint16(10, items.length, true);
  let at = VHDX_METADATA_TABLE_SIZE;
  items.forEach(([id, data, flags], i) => {
    const o = 32 + i * 32;
    id.write(r, o);
    dv.setUint32(o + 16, at, true);
    dv.setUint32(o + 20, data.length, true);
    dv.setUint32(o + 24, flags, true);
    r.set(data, at);
    at += data.length;
  });
  return r;
}
