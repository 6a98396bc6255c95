/** VHDX: the block device, creation and check/repair. See vhdx-disk.ts for the crash-safety rules. */

export { type CheckResult, checkVhdx } from './check.ts';
export { compactVhdx, planMoves, type VhdxCompactResult } from './compact.ts';
export {
  createVhdx,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_DIFFERENCING_BLOCK_SIZE,
  type VhdxCreateOptions,
} from './create.ts';
export { type FileAllocation, VhdxDisk, type VhdxOpenOptions } from './vhdx-disk.ts';
