/**
 * A running VM's virtual SCSI controllers (storvsp), built from its hard-drive configuration: each
 * SCSI controller number is one VMBus offer of class HV_SCSI_GUID, each drive a LUN at its
 * ControllerLocation, backed by the image opened with the disk library. Drives can be added and removed
 * while the VM runs (the guest rescans on ENUMERATE_BUS) and resized online (the guest sees UNIT ATTENTION
 * 2A/09 and re-reads the capacity). The guest reports what it sees (`disks`), validated here.
 * IDE drives are not offered (the IDE accelerator path is not built).
 */
import { resolve } from 'node:path';
import { type OfferSink, STORVSP_MAX_LUNS, StorvspController } from '../devices/storage/host.ts';
import type { BlockDevice } from '../disk/block-device.ts';
import { createDisk, openDisk } from '../disk/open.ts';
import { mergeDisk } from '../disk/ops/merge.ts';
import { HvError } from '../protocol/errors.ts';
import { Guid } from '../protocol/guid.ts';
import type { HostProfileName } from '../vmbus/host-profiles.ts';
import type { HardDriveConfig } from './vm-config.ts';

/** The guest's view of one disk (ours; Get-VMHardDiskDrive has no such property). */
export interface GuestDiskView {
  Lun: number;
  /** Bytes, as the guest read it with READ CAPACITY(16). */
  Size: number;
  LogicalSectorSize: number;
  /** INQUIRY vendor / product identification, trimmed ("Msft", "Virtual Disk"). */
  Vendor: string;
  Product: string;
}

/** One disk of the guest's `disks` report (validated). */
export interface GuestDiskEntry {
  controller: string;
  lun: number;
  size: number;
  blockSize: number;
  vendor: string;
  product: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Validates the guest's `disks` list (untrusted); null when malformed. */
export function parseGuestDisks(v: unknown): GuestDiskEntry[] | null {
  if (!Array.isArray(v) || v.length > 4 * 256) return null;
  const out: GuestDiskEntry[] = [];
  for (const x of v) {
    if (typeof x !== 'object' || x === null) return null;
    const e = x as Record<string, unknown>;
    const int = (n: unknown, max: number) =>
      Number.isSafeInteger(n) && (n as number) >= 0 && (n as number) <= max;
    const text = (s: unknown) => typeof s === 'string' && s.length <= 32;
    if (typeof e.controller !== 'string' || !GUID.test(e.controller)) return null;
    if (!int(e.lun, 255) || !int(e.size, Number.MAX_SAFE_INTEGER) || !int(e.blockSize, 65536)) return null;
    if (!text(e.vendor) || !text(e.product)) return null;
    out.push({
      controller: e.controller,
      lun: e.lun as number,
      size: e.size as number,
      blockSize: e.blockSize as number,
      vendor: e.vendor as string,
      product: e.product as string,
    });
  }
  return out;
}

/** Instance GUID of SCSI controller `n` (ours: Hyper-V picks one per VM). */
export function scsiControllerInstance(n: number): Guid {
  return Guid.parse(`f8b3781b-1e82-4818-a1c3-63d806ec15${(0xb0 + n).toString(16).padStart(2, '0')}`);
}

/** 16-byte disk identifier for VPD page 0x83 from the image's DiskIdentifier, or from its path. */
async function diskId(disk: BlockDevice, path: string): Promise<Uint8Array> {
  const info = await disk.info();
  if (info.DiskIdentifier) return Guid.parse(info.DiskIdentifier).bytes;
  const id = new Uint8Array(16);
  for (let i = 0; i < path.length; i++) id[i % 16] = (id[i % 16]! * 31 + path.charCodeAt(i)) & 0xff;
  return id;
}

interface Attached {
  drive: HardDriveConfig;
  disk: BlockDevice;
}

export class VmStorage {
  readonly #o: { server: OfferSink; profile: HostProfileName; log(message: string): void };
  readonly #controllers = new Map<number, StorvspController>();
  readonly #attached: Attached[] = [];
  readonly #fc = new Map<number, StorvspController>();
  #guest: GuestDiskEntry[] = [];

  constructor(o: { server: OfferSink; profile: HostProfileName; log(message: string): void }) {
    this.#o = o;
  }

  #controller(n: number): StorvspController {
    let c = this.#controllers.get(n);
    if (!c) {
      c = new StorvspController({
        server: this.#o.server,
        instance: scsiControllerInstance(n),
        profile: this.#o.profile,
        maxSubChannels: 1,
        log: (m) => this.#o.log(m),
      });
      this.#controllers.set(n, c);
      c.offer();
    }
    return c;
  }

  /**
   * Offers virtual Fibre Channel HBA `index` with these WWNs (8 bytes each, big-endian). It has no LUNs
   * (there is no virtual SAN); the guest sees the adapter and its WWNs through FCHBA_DATA.
   */
  addFibreChannel(index: number, portWwn: Uint8Array, nodeWwn: Uint8Array): void {
    if (this.#fc.has(index)) return;
    const c = new StorvspController({
      server: this.#o.server,
      instance: Guid.parse(
        `2f9bcc4a-0000-4af3-b76b-6fd0be528c${(0x10 + index).toString(16).padStart(2, '0')}`,
      ),
      profile: this.#o.profile,
      fc: { portWwn, nodeWwn },
      log: (m) => this.#o.log(m),
    });
    this.#fc.set(index, c);
    c.offer();
  }

  /**
   * Opens the image and attaches it at its controller/location (hot add on a running guest).
   * @throws HvError HV_ERR_INVALID_ARGUMENT for IDE or a location outside 0..63, HV_ERR_ALREADY_EXISTS when
   *   the slot or the file is in use, and the disk library's errors for the image.
   */
  async add(drive: HardDriveConfig): Promise<void> {
    if (drive.controllerType !== 'SCSI')
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `controller type ${drive.controllerType}: only SCSI drives are served (use -ControllerType SCSI)`,
      );
    if (drive.controllerLocation < 0 || drive.controllerLocation >= STORVSP_MAX_LUNS)
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `controller location ${drive.controllerLocation} must be 0..${STORVSP_MAX_LUNS - 1}`,
      );
    if (this.#find(drive.controllerNumber, drive.controllerLocation))
      throw new HvError(
        'HV_ERR_ALREADY_EXISTS',
        `SCSI ${drive.controllerNumber}:${drive.controllerLocation} already has a disk`,
      );
    if (this.#attached.some((a) => resolve(a.drive.path) === resolve(drive.path)))
      throw new HvError('HV_ERR_ALREADY_EXISTS', `${drive.path} is already attached to this VM`);
    const disk = await openDisk(drive.path);
    try {
      this.#controller(drive.controllerNumber).attach(
        drive.controllerLocation,
        disk,
        await diskId(disk, drive.path),
      );
    } catch (e) {
      await disk.close();
      throw e;
    }
    this.#attached.push({ drive, disk });
  }

  /** Detaches (hot remove) and closes the image. @throws HvError HV_ERR_NOT_FOUND when the slot is empty. */
  async remove(controllerNumber: number, controllerLocation: number): Promise<HardDriveConfig> {
    const a = this.#find(controllerNumber, controllerLocation);
    if (!a)
      throw new HvError('HV_ERR_NOT_FOUND', `no disk at SCSI ${controllerNumber}:${controllerLocation}`);
    await this.#controller(controllerNumber).detach(controllerLocation);
    this.#attached.splice(this.#attached.indexOf(a), 1);
    await a.disk.flush();
    await a.disk.close();
    return a.drive;
  }

  /**
   * Continues a running drive in a new differencing child of its current image, without the guest
   * noticing (the checkpoint step between a VSS freeze and thaw): new commands wait, running ones finish,
   * the image is flushed and closed, `childPath` is created on it and opened, I/O resumes on the child.
   * On failure the drive goes on with its old image and the error is rethrown.
   * @throws HvError HV_ERR_NOT_FOUND when the slot is empty; the disk library's errors.
   */
  async continueInChild(
    controllerNumber: number,
    controllerLocation: number,
    childPath: string,
  ): Promise<void> {
    await this.#switchImage(controllerNumber, controllerLocation, childPath, async (old, a) => {
      await (
        await createDisk(childPath, { type: 'differencing', parentPath: a.drive.path, format: old.format })
      ).close();
    });
  }

  /**
   * Undoes {@link continueInChild} while the guest runs (a checkpoint that failed on a later drive): I/O is
   * paused as there, the child is merged into `parentPath` (what the guest wrote since is kept; the child
   * file is deleted) and the drive continues on the parent.
   * @throws HvError HV_ERR_NOT_FOUND when the slot is empty; the merge's errors (the drive then stays on
   *   the child, which still reads correctly).
   */
  async returnToParent(
    controllerNumber: number,
    controllerLocation: number,
    parentPath: string,
  ): Promise<void> {
    await this.#switchImage(controllerNumber, controllerLocation, parentPath, async (_old, a) => {
      await mergeDisk(a.drive.path, parentPath);
    });
  }

  /**
   * Pauses I/O on a running drive (new commands wait, running ones finish), flushes and closes its image,
   * runs `change` (which makes `newPath`), then continues on `newPath`; if `change` or opening `newPath`
   * fails, the drive reopens its old image and the error is rethrown.
   * @throws HvError HV_ERR_NOT_FOUND when the slot is empty; `change`'s errors.
   */
  async #switchImage(
    controllerNumber: number,
    controllerLocation: number,
    newPath: string,
    change: (old: BlockDevice, a: Attached) => Promise<void>,
  ): Promise<void> {
    const a = this.#find(controllerNumber, controllerLocation);
    if (!a)
      throw new HvError('HV_ERR_NOT_FOUND', `no disk at SCSI ${controllerNumber}:${controllerLocation}`);
    let failure: unknown = null;
    await this.#controller(controllerNumber).swap(controllerLocation, async () => {
      const old = a.disk; // the image the device runs on (LunImage there, BlockDevice here)
      await old.flush();
      await old.close();
      try {
        await change(old, a);
        a.disk = await openDisk(newPath);
        a.drive = { ...a.drive, path: newPath };
      } catch (e) {
        failure = e;
        a.disk = await openDisk(a.drive.path);
      }
      return a.disk;
    });
    if (failure) throw failure;
  }

  /** The open image of an attached file (for online resize), or null. */
  diskForPath(path: string): BlockDevice | null {
    return this.#attached.find((a) => resolve(a.drive.path) === resolve(path))?.disk ?? null;
  }

  #find(n: number, loc: number): Attached | undefined {
    return this.#attached.find((a) => a.drive.controllerNumber === n && a.drive.controllerLocation === loc);
  }

  /** Records the guest's `disks` report (already validated). */
  noteGuestDisks(disks: GuestDiskEntry[]): void {
    this.#guest = disks;
  }

  /** What the guest sees at this drive's controller/LUN, or null (not scanned yet, or not visible). */
  guestDisk(d: HardDriveConfig): GuestDiskView | null {
    const inst = scsiControllerInstance(d.controllerNumber).toString();
    const g = this.#guest.find((x) => x.controller === inst && x.lun === d.controllerLocation);
    return g
      ? { Lun: g.lun, Size: g.size, LogicalSectorSize: g.blockSize, Vendor: g.vendor, Product: g.product }
      : null;
  }

  /** Flushes and closes every image. */
  async close(): Promise<void> {
    for (const a of this.#attached.splice(0)) {
      await a.disk.flush().catch(() => {});
      await a.disk.close().catch(() => {});
    }
  }
}
