/**
 * SCSI opcodes, status, sense keys and additional sense codes used between storvsc and storvsp. Values are
 * the T10 SPC-4/SBC-3 ones (Linux include/scsi/scsi_proto.h names; OpenVMM scsi_defs/src/lib.rs `ScsiOp`,
 * `SenseKey`, `AdditionalSenseCode`; reference devices.md B.10).
 */

export const TEST_UNIT_READY = 0x00;
export const REQUEST_SENSE = 0x03;
export const READ_6 = 0x08;
export const WRITE_6 = 0x0a;
export const INQUIRY = 0x12;
export const MODE_SELECT = 0x15;
export const MODE_SENSE = 0x1a;
export const START_STOP = 0x1b;
export const ALLOW_MEDIUM_REMOVAL = 0x1e;
export const READ_CAPACITY = 0x25;
export const READ_10 = 0x28;
export const WRITE_10 = 0x2a;
export const WRITE_VERIFY = 0x2e;
export const VERIFY = 0x2f;
export const SYNCHRONIZE_CACHE = 0x35;
export const WRITE_SAME = 0x41;
export const UNMAP = 0x42;
export const MODE_SELECT_10 = 0x55;
export const MODE_SENSE_10 = 0x5a;
export const PERSISTENT_RESERVE_IN = 0x5e;
export const PERSISTENT_RESERVE_OUT = 0x5f;
export const READ_16 = 0x88;
export const WRITE_16 = 0x8a;
export const WRITE_VERIFY_16 = 0x8e;
export const VERIFY_16 = 0x8f;
export const SYNCHRONIZE_CACHE_16 = 0x91;
export const WRITE_SAME_16 = 0x93;
/** SERVICE ACTION IN(16); service actions below. */
export const SERVICE_ACTION_IN_16 = 0x9e;
export const SAI_READ_CAPACITY_16 = 0x10;
export const SAI_GET_LBA_STATUS = 0x12;
export const REPORT_LUNS = 0xa0;
export const MAINTENANCE_IN = 0xa3;
export const READ_12 = 0xa8;
export const WRITE_12 = 0xaa;
export const WRITE_VERIFY_12 = 0xae;
export const VERIFY_12 = 0xaf;

/** SCSI status byte (SAM). */
export const SAM_STAT_GOOD = 0x00;
export const SAM_STAT_CHECK_CONDITION = 0x02;
export const SAM_STAT_CONDITION_MET = 0x04;
export const SAM_STAT_BUSY = 0x08;
export const SAM_STAT_RESERVATION_CONFLICT = 0x18;
export const SAM_STAT_TASK_SET_FULL = 0x28;
export const SAM_STAT_TASK_ABORTED = 0x40;

/** Sense keys. */
export const NO_SENSE = 0x00;
export const RECOVERED_ERROR = 0x01;
export const NOT_READY = 0x02;
export const MEDIUM_ERROR = 0x03;
export const HARDWARE_ERROR = 0x04;
export const ILLEGAL_REQUEST = 0x05;
export const UNIT_ATTENTION = 0x06;
export const DATA_PROTECT = 0x07;
export const ABORTED_COMMAND = 0x0b;

/** Additional sense codes (ASC) used here; ASCQ alongside. */
export const ASC_NO_ADDITIONAL_SENSE = 0x00;
export const ASC_LBA_OUT_OF_RANGE = 0x21;
export const ASC_INVALID_COMMAND_OPCODE = 0x20;
export const ASC_INVALID_FIELD_IN_CDB = 0x24;
export const ASC_INVALID_FIELD_IN_PARAMETER_LIST = 0x26;
export const ASC_PARAMETER_LIST_LENGTH_ERROR = 0x1a;
export const ASC_LOGICAL_UNIT_NOT_SUPPORTED = 0x25;
export const ASC_WRITE_PROTECTED = 0x27;
export const ASC_UNRECOVERED_READ_ERROR = 0x11;
export const ASC_WRITE_ERROR = 0x0c;
/** 0x2A: parameters changed; with ASCQ 0x09 = capacity data has changed (Linux storvsc rescans on it). */
export const ASC_PARAMETERS_CHANGED = 0x2a;
export const ASCQ_CAPACITY_DATA_HAS_CHANGED = 0x09;
/** 0x3F: operating conditions changed; ASCQ 0x0E = reported LUNs data has changed. */
export const ASC_OPERATING_CONDITIONS_CHANGED = 0x3f;
export const ASCQ_REPORTED_LUNS_DATA_HAS_CHANGED = 0x0e;

/** Peripheral qualifier/type byte for "logical unit not present" (qualifier 3, type 0x1F). */
export const PERIPHERAL_LUN_NOT_PRESENT = 0x7f;
/** Peripheral device type: direct-access block device. */
export const TYPE_DISK = 0x00;

/** VPD page codes a disk answers (OpenVMM scsidisk inquiry.rs). */
export const VPD_SUPPORTED_PAGES = 0x00;
export const VPD_SERIAL_NUMBER = 0x80;
export const VPD_DEVICE_IDENTIFIERS = 0x83;
export const VPD_BLOCK_LIMITS = 0xb0;
export const VPD_BLOCK_DEVICE_CHARACTERISTICS = 0xb1;
export const VPD_LOGICAL_BLOCK_PROVISIONING = 0xb2;
export const VPD_MSFT_PAGING_EXTENT_PROPERTIES = 0xce;
export const VPD_MSFT_VIRTUAL_DEVICE_PROPERTIES = 0xcf;

/** Mode page codes. */
export const MODE_PAGE_CACHING = 0x08;
export const MODE_PAGE_ALL = 0x3f;
