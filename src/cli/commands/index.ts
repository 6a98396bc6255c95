/**
 * Every `hvis` command, one yargs CommandModule per file (or group of related cmdlets).
 * Add a command by importing its module here; keep one import line per module.
 */
import type { CommandModule } from 'yargs';
import { addVmKvpCommand } from './add-vmkvp.ts';
import {
  checkpointVmCommand,
  getVmSnapshotCommand,
  removeVmSnapshotCommand,
  restoreVmSnapshotCommand,
} from './checkpoint.ts';
import { copyVmFileCommand } from './copy-vmfile.ts';
import { disableVmIntegrationServiceCommand } from './disable-vmintegrationservice.ts';
import { enableVmIntegrationServiceCommand } from './enable-vmintegrationservice.ts';
import { getVmCommand } from './get-vm.ts';
import { getVmIntegrationServiceCommand } from './get-vmintegrationservice.ts';
import { getVmKvpCommand } from './get-vmkvp.ts';
import { getVmNetworkAdapterCommand } from './get-vmnetworkadapter.ts';
import { lsvmbusCommand } from './lsvmbus.ts';
import { newVmCommand } from './new-vm.ts';
import { removeVmCommand } from './remove-vm.ts';
import { removeVmKvpCommand } from './remove-vmkvp.ts';
import { restartVmCommand } from './restart-vm.ts';
import { setVmKvpCommand } from './set-vmkvp.ts';
import { setVmNetworkAdapterCommand } from './set-vmnetworkadapter.ts';
import { startVmCommand } from './start-vm.ts';
import { stopVmCommand } from './stop-vm.ts';
import { upCommand } from './up.ts';
import { vhdCommands } from './vhd.ts';
import { addVmFibreChannelHbaCommand, getVmFibreChannelHbaCommand } from './vmfibrechannelhba.ts';
import {
  addVmHardDiskDriveCommand,
  exportVmHardDiskDriveCommand,
  getVmHardDiskDriveCommand,
  removeVmHardDiskDriveCommand,
} from './vmharddiskdrive.ts';

export const commands: CommandModule[] = [
  copyVmFileCommand,
  disableVmIntegrationServiceCommand,
  enableVmIntegrationServiceCommand,
  getVmCommand,
  getVmIntegrationServiceCommand,
  lsvmbusCommand,
  newVmCommand,
  removeVmCommand,
  restartVmCommand,
  startVmCommand,
  stopVmCommand,
  upCommand,
  ...vhdCommands,
  addVmKvpCommand,
  getVmKvpCommand,
  getVmNetworkAdapterCommand,
  removeVmKvpCommand,
  setVmKvpCommand,
  setVmNetworkAdapterCommand,
  getVmHardDiskDriveCommand,
  addVmHardDiskDriveCommand,
  removeVmHardDiskDriveCommand,
  exportVmHardDiskDriveCommand,
  checkpointVmCommand,
  getVmSnapshotCommand,
  restoreVmSnapshotCommand,
  removeVmSnapshotCommand,
  addVmFibreChannelHbaCommand,
  getVmFibreChannelHbaCommand,
];
