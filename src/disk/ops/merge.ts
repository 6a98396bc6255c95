/**
 * Merge-VHD: folds a differencing child (and any disks between it and the destination) into an ancestor,
 * then deletes the merged files. Every range the child reads as data is written into the destination, so
 * after the merge the destination reads exactly as the child did. The merge writes in place; if it is
 * interrupted the child still reads correctly (its own sectors override) and the merge can be rerun.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { HvError } from '../../protocol/errors.ts';
import type { BlockDevice, VhdInfo } from '../block-device.ts';
import { openDisk } from '../open.ts';
import { copyData } from './convert.ts';
import type { Progress } from './progress.ts';

function parentOf(dev: BlockDevice): BlockDevice | null {
  return ((dev as { parent?: BlockDevice | null }).parent ?? null) as BlockDevice | null;
}

function pathOf(dev: BlockDevice): string {
  return nodePath.resolve((dev as { path?: string }).path ?? '');
}

/**
 * Merges `childPath` into `destinationPath` (default: its immediate parent).
 * @throws HvError HV_ERR_INVALID_ARGUMENT (not differencing, destination not an ancestor).
 */
export async function mergeDisk(
  childPath: string,
  destinationPath?: string,
  progress?: Progress,
): Promise<VhdInfo> {
  const child = await openDisk(childPath, { readOnly: true });
  const merged: string[] = [];
  let dest: string;
  try {
    if (child.type !== 'Differencing')
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `${childPath} is ${child.type.toLowerCase()}; only a differencing disk can be merged`,
      );
    const ancestors: string[] = [];
    for (let p = parentOf(child); p; p = parentOf(p)) ancestors.push(pathOf(p));
    dest = destinationPath ? fs.realpathSync(destinationPath) : ancestors[0]!;
    const idx = ancestors.findIndex((a) => fs.realpathSync(a) === dest);
    if (idx < 0)
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `${destinationPath} is not an ancestor of ${childPath} (ancestors: ${ancestors.join(', ')})`,
      );
    merged.push(pathOf(child), ...ancestors.slice(0, idx));
    const target = await openDisk(dest);
    try {
      if (target.size < child.size) await target.resize(child.size);
      await copyData(child, target, progress, false);
      await target.flush();
    } finally {
      await target.close();
    }
  } finally {
    await child.close();
  }
  for (const m of merged) await fs.promises.rm(m);
  const out = await openDisk(dest, { readOnly: true });
  try {
    return await out.info();
  } finally {
    await out.close();
  }
}
