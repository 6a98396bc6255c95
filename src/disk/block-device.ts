/**
 * The one block-device interface every disk format (raw, VHD, VHDX) implements and the storage VSP uses.
 * Offsets and lengths are in bytes; `read`/`write`/`trim` must be multiples of `logicalSectorSize` and lie
 * inside `[0, size)`, else they throw `HvError('HV_ERR_INVALID_ARGUMENT')`. I/O errors throw
 * `HvError('HV_ERR_IO')`; a structure that fails its checks throws `HvError('HV_ERR_CORRUPT')`.
 */

/** `Get-VHD`'s VhdFormat values. */
export type VhdFormat = 'VHD' | 'VHDX' | 'Raw';
/** `Get-VHD`'s VhdType values. */
export type VhdType = 'Fixed' | 'Dynamic' | 'Differencing';

/** What `Get-VHD` prints for an image (property names as in the cmdlet's VirtualHardDisk object). */
export interface VhdInfo {
  Path: string;
  VhdFormat: VhdFormat;
  VhdType: VhdType;
  /** Bytes the image file occupies on disk (allocated, not apparent). */
  FileSize: number;
  /** Virtual size in bytes. */
  Size: number;
  /** Smallest virtual size the image can be shrunk to without losing data, in bytes (null if unknown). */
  MinimumSize: number | null;
  LogicalSectorSize: number;
  PhysicalSectorSize: number;
  /** Block size in bytes; 0 for fixed and raw. */
  BlockSize: number;
  ParentPath: string | null;
  /** Disk identifier GUID (VHDX page 83 data / VHD unique id), lowercase, or null for raw. */
  DiskIdentifier: string | null;
  FragmentationPercentage: number | null;
  Alignment: number;
  Attached: boolean;
}

/** Allocation state of a byte range, for sparse-aware copies. */
export interface BlockStatus {
  /** `data`: allocated here or in a parent; `zero`: reads as zeros and needs not be written. */
  state: 'data' | 'zero';
  /** Length in bytes of the run with this state starting at the queried offset (>= 1 sector). */
  length: number;
}

export interface BlockDevice {
  readonly format: VhdFormat;
  readonly type: VhdType;
  /** Virtual size in bytes. */
  readonly size: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly readOnly: boolean;
  /** Fills `buf` from byte `offset`. Never-written ranges read as zeros (or from the parent). */
  read(buf: Uint8Array, offset: number): Promise<void>;
  /** Writes `buf` at byte `offset`; durable after the next `flush()`. */
  write(buf: Uint8Array, offset: number): Promise<void>;
  /** Makes every completed write durable (fsync, plus VHDX log/metadata ordering). */
  flush(): Promise<void>;
  /** Discards a range: it reads as zeros afterwards; whole blocks are deallocated where the format can. */
  trim(offset: number, length: number): Promise<void>;
  /** Allocation state at `offset` (used by convert and NBD block status). */
  blockStatus(offset: number, length: number): Promise<BlockStatus>;
  /** Changes the virtual size (bytes, multiple of the logical sector size). Shrinking below data throws. */
  resize(newSize: number): Promise<void>;
  info(): Promise<VhdInfo>;
  close(): Promise<void>;
}
