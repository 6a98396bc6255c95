/**
 * Get-/Add-/Remove-VMHardDiskDrive on a VM (running or off) and online resize of an attached image.
 * Changes are persisted in the VM's configuration; on a running VM the drive is hot added or removed at
 * once through its storvsp controller (the guest rescans on ENUMERATE_BUS), as Hyper-V does for SCSI.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { STORVSP_MAX_LUNS } from '../devices/storage/host.ts';
import type { VhdInfo } from '../disk/block-device.ts';
import { HvError } from '../protocol/errors.ts';
import { type GuestDiskView, scsiControllerInstance } from './storage.ts';
import type { Vm } from './vm.ts';
import type { HardDriveConfig } from './vm-config.ts';

/** One Get-VMHardDiskDrive object (its property names; `GuestDisk` is ours). */
export interface HardDiskDriveView {
  VMName: string;
  Name: string;
  ControllerType: 'SCSI' | 'IDE';
  ControllerNumber: number;
  ControllerLocation: number;
  Path: string;
  /** Physical pass-through disk number; hvis attaches only virtual hard disks. */
  DiskNumber: null;
  GuestDisk: GuestDiskView | null;
}

export function hardDiskDriveViews(vm: Vm): HardDiskDriveView[] {
  return vm.config.hardDrives.map((d) => ({
    VMName: vm.name,
    Name: 'Hard Drive',
    ControllerType: d.controllerType,
    ControllerNumber: d.controllerNumber,
    ControllerLocation: d.controllerLocation,
    Path: d.path,
    DiskNumber: null,
    GuestDisk: vm.session?.storage?.guestDisk(d) ?? null,
  }));
}

export interface AddDriveRequest {
  path: string;
  controllerType?: 'SCSI' | 'IDE';
  controllerNumber?: number;
  /** Default: the first free location on the controller. */
  controllerLocation?: number;
}

/**
 * Add-VMHardDiskDrive. @throws HvError HV_ERR_INVALID_ARGUMENT (relative path, IDE, bad numbers),
 * HV_ERR_NOT_FOUND (no such file), HV_ERR_ALREADY_EXISTS (slot taken or file attached).
 */
export async function addHardDiskDrive(vm: Vm, req: AddDriveRequest): Promise<HardDiskDriveView> {
  if (!isAbsolute(req.path))
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `-Path '${req.path}' must be an absolute path to a .vhdx, .vhd or raw image`,
    );
  if (!existsSync(req.path))
    throw new HvError('HV_ERR_NOT_FOUND', `${req.path}: no such file (create it with hvis new-vhd)`);
  if ((req.controllerType ?? 'SCSI') !== 'SCSI')
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      'hvis serves SCSI controllers only (IDE needs the emulated IDE path); use -ControllerType SCSI',
    );
  const controllerNumber = req.controllerNumber ?? 0;
  if (!Number.isInteger(controllerNumber) || controllerNumber < 0 || controllerNumber > 3)
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `-ControllerNumber ${controllerNumber} must be 0..3 (Hyper-V allows 4 SCSI controllers)`,
    );
  let added: HardDriveConfig | null = null;
  await vm.updateConfig(async (cfg, session) => {
    const used = new Set(
      cfg.hardDrives
        .filter((d) => d.controllerType === 'SCSI' && d.controllerNumber === controllerNumber)
        .map((d) => d.controllerLocation),
    );
    let loc = req.controllerLocation;
    if (loc === undefined) {
      loc = 0;
      while (used.has(loc)) loc++;
    }
    if (!Number.isInteger(loc) || loc < 0 || loc >= STORVSP_MAX_LUNS)
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `-ControllerLocation ${loc} must be 0..${STORVSP_MAX_LUNS - 1}`,
      );
    if (used.has(loc))
      throw new HvError(
        'HV_ERR_ALREADY_EXISTS',
        `SCSI ${controllerNumber}:${loc} of VM '${vm.name}' already has a drive`,
      );
    if (cfg.hardDrives.some((d) => resolve(d.path) === resolve(req.path)))
      throw new HvError('HV_ERR_ALREADY_EXISTS', `${req.path} is already attached to VM '${vm.name}'`);
    const drive: HardDriveConfig = {
      path: resolve(req.path),
      controllerType: 'SCSI',
      controllerNumber,
      controllerLocation: loc,
      sizeBytes: 0,
      vhdType: 'Dynamic',
    };
    if (session?.storage) await session.storage.add(drive);
    added = drive;
    return { ...cfg, hardDrives: [...cfg.hardDrives, drive] };
  });
  const d = added as HardDriveConfig | null;
  return hardDiskDriveViews(vm).find(
    (v) => v.ControllerNumber === d?.controllerNumber && v.ControllerLocation === d?.controllerLocation,
  )!;
}

/** Remove-VMHardDiskDrive. @throws HvError HV_ERR_NOT_FOUND when the slot is empty. */
export async function removeHardDiskDrive(
  vm: Vm,
  controllerNumber: number,
  controllerLocation: number,
): Promise<HardDiskDriveView> {
  const view = hardDiskDriveViews(vm).find(
    (v) => v.ControllerNumber === controllerNumber && v.ControllerLocation === controllerLocation,
  );
  await vm.updateConfig(async (cfg, session) => {
    const i = cfg.hardDrives.findIndex(
      (d) =>
        d.controllerType === 'SCSI' &&
        d.controllerNumber === controllerNumber &&
        d.controllerLocation === controllerLocation,
    );
    if (i < 0)
      throw new HvError(
        'HV_ERR_NOT_FOUND',
        `VM '${vm.name}' has no drive at SCSI ${controllerNumber}:${controllerLocation}`,
      );
    if (session?.storage) await session.storage.remove(controllerNumber, controllerLocation);
    return { ...cfg, hardDrives: cfg.hardDrives.filter((_, j) => j !== i) };
  });
  return view!;
}

/**
 * Resize-VHD of an image attached to a running VM: resizes the open image in place (the guest sees the
 * new capacity through UNIT ATTENTION 2A/09). Returns null when no running VM has the file attached.
 * @throws the disk library's errors (shrinking below data, bad size).
 */
export async function resizeAttachedImage(
  vms: readonly Vm[],
  path: string,
  sizeBytes: number,
): Promise<VhdInfo | null> {
  for (const vm of vms) {
    const disk = vm.session?.storage?.diskForPath(path);
    if (!disk) continue;
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % disk.logicalSectorSize !== 0)
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `-SizeBytes ${sizeBytes} must be a positive multiple of ${disk.logicalSectorSize}`,
      );
    await disk.resize(sizeBytes);
    await disk.flush();
    return disk.info();
  }
  return null;
}

/** What `export-vmharddiskdrive` (ours, no cmdlet) answers. */
export interface NbdExportView {
  VMName: string;
  ControllerNumber: number;
  ControllerLocation: number;
  /** NBD URI for qemu-img, qemu-io, nbdinfo, nbdcopy, fio --ioengine=nbd. */
  Uri: string | null;
}

/**
 * Starts (or with `stop`, ends) an NBD export of a running VM's disk: the guest serves it from its
 * storvsc block device on a Unix socket under `<home>/guests/<vm>/nbd/`, so every client byte crosses
 * VMBus. Waits up to 5 s for the socket.
 * @throws HvError HV_ERR_INVALID_STATE when the VM is not running, HV_ERR_NOT_FOUND for an empty slot,
 *   HV_ERR_TIMEOUT when the guest has not exported it (e.g. it does not see that disk).
 */
export async function exportHardDiskDrive(
  vm: Vm,
  home: string,
  controllerNumber: number,
  controllerLocation: number,
  stop = false,
): Promise<NbdExportView> {
  const session = vm.session;
  if (!session?.sendGuest)
    throw new HvError(
      'HV_ERR_INVALID_STATE',
      `VM '${vm.name}' is not running: start it to export its disks over NBD`,
    );
  if (
    !vm.config.hardDrives.some(
      (d) =>
        d.controllerType === 'SCSI' &&
        d.controllerNumber === controllerNumber &&
        d.controllerLocation === controllerLocation,
    )
  )
    throw new HvError(
      'HV_ERR_NOT_FOUND',
      `VM '${vm.name}' has no drive at SCSI ${controllerNumber}:${controllerLocation}`,
    );
  const socket = join(
    home,
    'guests',
    vm.name,
    'nbd',
    `scsi${controllerNumber}-lun${controllerLocation}.sock`,
  );
  const base = {
    VMName: vm.name,
    ControllerNumber: controllerNumber,
    ControllerLocation: controllerLocation,
  };
  if (stop) {
    session.sendGuest({ type: 'nbd-unexport', socket });
    return { ...base, Uri: null };
  }
  session.sendGuest({
    type: 'nbd-export',
    controller: scsiControllerInstance(controllerNumber).toString(),
    lun: controllerLocation,
    socket,
  });
  for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(socket))
    throw new HvError(
      'HV_ERR_TIMEOUT',
      `the guest of VM '${vm.name}' did not export SCSI ${controllerNumber}:${controllerLocation} (does it see the disk? see get-vmharddiskdrive)`,
    );
  return { ...base, Uri: `nbd+unix:///lun${controllerLocation}?socket=${socket}` };
}
