/**
 * VMBus device class GUIDs (the offer's `if_type`) and the IC channel instance GUIDs (`if_instance`).
 * Sources: Linux include/linux/hyperv.h (`HV_*_GUID`), drivers/hv/channel_mgmt.c (`enum hv_dev_type`,
 * unsupported list), tools/hv/lsvmbus (`vmbus_dev_dict` display names); OpenVMM
 * vm/devices/hyperv_ic_protocol/src/{shutdown,timesync,kvp}.rs (instance GUIDs).
 */
import { Guid } from '../guid.ts';

/** Synthetic network adapter (netvsc), Linux `HV_NIC_GUID`. */
export const HV_NIC_GUID = Guid.parse('f8615163-df3e-46c5-913f-f2d2f965ed0e');
/** Synthetic IDE accelerator, Linux `HV_IDE_GUID`. */
export const HV_IDE_GUID = Guid.parse('32412632-86cb-44a2-9b5c-50d1417354f5');
/** Synthetic SCSI controller (storvsc), Linux `HV_SCSI_GUID`. */
export const HV_SCSI_GUID = Guid.parse('ba6163d9-04a1-4d29-b605-72e2ffb1dc7f');
/** Shutdown IC, Linux `HV_SHUTDOWN_GUID`. */
export const HV_SHUTDOWN_GUID = Guid.parse('0e0b6031-5213-4934-818b-38d90ced39db');
/** Time synchronization IC, Linux `HV_TS_GUID`. */
export const HV_TS_GUID = Guid.parse('9527e630-d0ae-497b-adce-e80ab0175caf');
/** Heartbeat IC, Linux `HV_HEART_BEAT_GUID`. */
export const HV_HEART_BEAT_GUID = Guid.parse('57164f39-9115-4e78-ab55-382f3bd5422d');
/** Key-value pair (data exchange) IC, Linux `HV_KVP_GUID`. */
export const HV_KVP_GUID = Guid.parse('a9a0f4e7-5a45-4d96-b827-8a841e8c03e6');
/** Dynamic memory (balloon), Linux `HV_DM_GUID`. */
export const HV_DM_GUID = Guid.parse('525074dc-8985-46e2-8057-a307dc18a502');
/** Synthetic mouse (HID), Linux `HV_MOUSE_GUID`. */
export const HV_MOUSE_GUID = Guid.parse('cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a');
/** Synthetic keyboard, Linux `HV_KBD_GUID`. */
export const HV_KBD_GUID = Guid.parse('f912ad6d-2b17-48ea-bd65-f927a61c7684');
/** VSS (backup) IC, Linux `HV_VSS_GUID`. */
export const HV_VSS_GUID = Guid.parse('35fa2e29-ea23-4236-96ae-3a6ebacba440');
/** Synthetic video (framebuffer), Linux `HV_SYNTHVID_GUID`. */
export const HV_SYNTHVID_GUID = Guid.parse('da0a7802-e377-4aac-8e77-0558eb1073f8');
/** Synthetic Fibre Channel, Linux `HV_SYNTHFC_GUID`. */
export const HV_SYNTHFC_GUID = Guid.parse('2f9bcc4a-0069-4af3-b76b-6fd0be528cda');
/** Guest file copy service (guest services IC), Linux `HV_FCOPY_GUID`. */
export const HV_FCOPY_GUID = Guid.parse('34d14be3-dee4-41c8-9ae7-6b174977c192');
/** NetworkDirect (guest RDMA), Linux `HV_ND_GUID`. */
export const HV_ND_GUID = Guid.parse('8c2eaf3d-32a7-4b09-ab99-bd1f1c86b501');
/** PCI Express pass-through (vPCI), Linux `HV_PCIE_GUID`. */
export const HV_PCIE_GUID = Guid.parse('44c4f61d-4444-4400-9d52-802e27ede19f');
/** Automatic VM activation 1 (Linux: no driver), Linux `HV_AVMA1_GUID`. */
export const HV_AVMA1_GUID = Guid.parse('f8e65716-3cb3-4a06-9a60-1889c5cccab5');
/** Automatic VM activation 2 (Linux: no driver), Linux `HV_AVMA2_GUID`. */
export const HV_AVMA2_GUID = Guid.parse('3375baf4-9e15-4b30-b765-67acb10d607b');
/** Remote Desktop Virtualization (Linux: no driver), Linux `HV_RDV_GUID`. */
export const HV_RDV_GUID = Guid.parse('276aacf4-ac15-426c-98dd-7521ad3f01fe');
/** Initial Machine Configuration / vmbfs (Linux: no driver), Linux `HV_IMC_GUID`. */
export const HV_IMC_GUID = Guid.parse('c376c1c3-d276-48d2-90a9-c04748072c60');

/** Linux `enum hv_dev_type` names (drivers/hv/channel_mgmt.c); unsupported classes are HV_UNKNOWN. */
export type HvDevType =
  | 'HV_IDE'
  | 'HV_SCSI'
  | 'HV_FC'
  | 'HV_NIC'
  | 'HV_ND'
  | 'HV_PCIE'
  | 'HV_FB'
  | 'HV_KBD'
  | 'HV_MOUSE'
  | 'HV_KVP'
  | 'HV_TS'
  | 'HV_HB'
  | 'HV_SHUTDOWN'
  | 'HV_FCOPY'
  | 'HV_BACKUP'
  | 'HV_DM'
  | 'HV_UNKNOWN';

/** One known device class: its GUID, Linux macro name, `hv_dev_type`, and the description lsvmbus prints. */
export interface VmbusDeviceClass {
  readonly guid: Guid;
  /** Linux macro name, e.g. `HV_NIC_GUID`. */
  readonly linuxName: string;
  readonly devType: HvDevType;
  /** tools/hv/lsvmbus `vmbus_dev_dict` text (IC names are bracketed there). */
  readonly lsvmbusName: string;
}

const cls = (guid: Guid, linuxName: string, devType: HvDevType, lsvmbusName: string): VmbusDeviceClass => ({
  guid,
  linuxName,
  devType,
  lsvmbusName,
});

/** Every class GUID of Linux hyperv.h, in the header's order. */
export const VMBUS_DEVICE_CLASSES: readonly VmbusDeviceClass[] = [
  cls(HV_NIC_GUID, 'HV_NIC_GUID', 'HV_NIC', 'Synthetic network adapter'),
  cls(HV_IDE_GUID, 'HV_IDE_GUID', 'HV_IDE', 'Synthetic IDE Controller'),
  cls(HV_SCSI_GUID, 'HV_SCSI_GUID', 'HV_SCSI', 'Synthetic SCSI Controller'),
  cls(HV_SHUTDOWN_GUID, 'HV_SHUTDOWN_GUID', 'HV_SHUTDOWN', '[Operating system shutdown]'),
  cls(HV_TS_GUID, 'HV_TS_GUID', 'HV_TS', '[Time Synchronization]'),
  cls(HV_HEART_BEAT_GUID, 'HV_HEART_BEAT_GUID', 'HV_HB', '[Heartbeat]'),
  cls(HV_KVP_GUID, 'HV_KVP_GUID', 'HV_KVP', '[Data Exchange]'),
  cls(HV_DM_GUID, 'HV_DM_GUID', 'HV_DM', '[Dynamic Memory]'),
  cls(HV_MOUSE_GUID, 'HV_MOUSE_GUID', 'HV_MOUSE', 'Synthetic mouse'),
  cls(HV_KBD_GUID, 'HV_KBD_GUID', 'HV_KBD', 'Synthetic keyboard'),
  cls(HV_VSS_GUID, 'HV_VSS_GUID', 'HV_BACKUP', '[Backup (volume checkpoint)]'),
  cls(HV_SYNTHVID_GUID, 'HV_SYNTHVID_GUID', 'HV_FB', 'Synthetic framebuffer adapter'),
  cls(HV_SYNTHFC_GUID, 'HV_SYNTHFC_GUID', 'HV_FC', 'Synthetic fiber channel adapter'),
  cls(HV_FCOPY_GUID, 'HV_FCOPY_GUID', 'HV_FCOPY', '[Guest services]'),
  cls(HV_ND_GUID, 'HV_ND_GUID', 'HV_ND', 'Synthetic RDMA adapter'),
  cls(HV_PCIE_GUID, 'HV_PCIE_GUID', 'HV_PCIE', 'PCI Express pass-through'),
  cls(HV_AVMA1_GUID, 'HV_AVMA1_GUID', 'HV_UNKNOWN', '[Reserved system device]'),
  cls(HV_AVMA2_GUID, 'HV_AVMA2_GUID', 'HV_UNKNOWN', '[Reserved system device]'),
  cls(HV_RDV_GUID, 'HV_RDV_GUID', 'HV_UNKNOWN', '[Reserved system device]'),
  // lsvmbus has no entry for IMC; it prints 'Unknown' for it.
  cls(HV_IMC_GUID, 'HV_IMC_GUID', 'HV_UNKNOWN', 'Unknown'),
];

/** The class entry for a GUID, or undefined for classes hyperv.h does not list (e.g. hv_sock service ids). */
export function findDeviceClass(guid: Guid): VmbusDeviceClass | undefined {
  return VMBUS_DEVICE_CLASSES.find((c) => c.guid.equals(guid));
}

/** What lsvmbus prints for a class GUID: its description, or `Unknown`. */
export function lsvmbusName(guid: Guid): string {
  return findDeviceClass(guid)?.lsvmbusName ?? 'Unknown';
}

/** Shutdown IC channel instance (`if_instance`), OpenVMM hyperv_ic_protocol/src/shutdown.rs. */
export const IC_SHUTDOWN_INSTANCE = Guid.parse('b6650ff7-33bc-4840-8048-e0676786f393');
/** Time sync IC channel instance, OpenVMM hyperv_ic_protocol/src/timesync.rs. */
export const IC_TIMESYNC_INSTANCE = Guid.parse('2dd1ce17-079e-403c-b352-a1921ee207ee');
/** KVP IC channel instance, OpenVMM hyperv_ic_protocol/src/kvp.rs. */
export const IC_KVP_INSTANCE = Guid.parse('242ff919-07db-4180-9c2e-b86cb68c8c55');
/** File copy IC channel instance: the sysfs path hard-coded in Linux tools/hv/hv_fcopy_uio_daemon.c. */
export const IC_FCOPY_INSTANCE = Guid.parse('eb765408-105f-49b6-b4aa-c123b64d17d4');
// Heartbeat and VSS instance GUIDs of real Hyper-V were not found in any source (reference §6.10): the host
// model picks its own for them; a guest must match on the class GUID, never on these instances.
