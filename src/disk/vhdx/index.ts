/** VHDX: the block device, creation and check/repair. See vhdx-disk.ts for the crash-safety rules. */
export { type FileAllocation, VhdxDisk, type VhdxOpenOptions } from './vhdx-disk.ts';
export { compactVhdx, planMoves, type VhdxCompactResult } from './compact.ts';
export {
  createVhdx,
  type VhdxCreateOptions,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_DIFFERENCING_BLOCK_SIZE,
} from './create.ts';
export { checkVhdx, type CheckResult } from './check.ts';
