/** RawDisk on its own: sparse create, read/write, trim, block status, resize, minimum size, bad ranges. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { RawDisk } from '../../src/disk/raw.ts';
import { isHvError } from '../../src/protocol/errors.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvis-raw-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;
const invalid = (re: RegExp) => (e: unknown) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT') && re.test(e.message);

test('a new raw image is sparse, reads zeros, and holds what is written at the same file offsets', async () => {
  const file = path.join(dir, 'a.img');
  const d = await RawDisk.create(file, { size: 64 * MiB });
  assert.equal(d.size, 64 * MiB);
  assert.equal(fs.statSync(file).size, 64 * MiB);
  assert.ok(fs.statSync(file).blocks * 512 < MiB, 'created sparse');
  const z = new Uint8Array(4096).fill(1);
  await d.read(z, 10 * MiB);
  assert.deepEqual(z, new Uint8Array(4096));
  await d.write(new Uint8Array(1024).fill(0x5c), 3 * MiB + 512);
  await d.flush();
  const onDisk = fs.readFileSync(file).subarray(3 * MiB, 3 * MiB + 2048);
  assert.deepEqual([...new Set(onDisk.subarray(512, 1536))], [0x5c]);
  assert.deepEqual([...new Set([...onDisk.subarray(0, 512), ...onDisk.subarray(1536)])], [0]);
  assert.deepEqual(await d.blockStatus(0, 64 * MiB), { state: 'zero', length: 3 * MiB });
  assert.equal((await d.blockStatus(3 * MiB, MiB)).state, 'data');
  assert.equal((await d.info()).MinimumSize, 3 * MiB + 1536);
  await d.trim(3 * MiB, MiB);
  assert.equal((await d.blockStatus(0, 64 * MiB)).length, 64 * MiB);
  assert.equal((await d.info()).MinimumSize, 0);
  await d.close();
});

test('resize grows with a hole, shrinks down to the data, and refuses to cut data', async () => {
  const file = path.join(dir, 'b.img');
  const d = await RawDisk.create(file, { size: 4 * MiB });
  await d.write(new Uint8Array(512).fill(7), 2 * MiB);
  await d.resize(32 * MiB);
  assert.equal(fs.statSync(file).size, 32 * MiB);
  assert.ok(fs.statSync(file).blocks * 512 < MiB);
  await assert.rejects(d.resize(2 * MiB), invalid(/data extends to byte 2097664/));
  await d.resize(2 * MiB + 512);
  assert.equal(fs.statSync(file).size, 2 * MiB + 512);
  await d.close();
  // Reopened: the size is the file length (rounded down to a sector).
  fs.appendFileSync(file, Buffer.alloc(100));
  const r = await RawDisk.open(file, { readOnly: true });
  assert.equal(r.size, 2 * MiB + 512);
  await assert.rejects(r.write(new Uint8Array(512), 0), (e: unknown) => isHvError(e, 'HV_ERR_INVALID_STATE'));
  await r.close();
});

test('unaligned, negative and out-of-range requests are refused with the reason', async () => {
  const file = path.join(dir, 'c.img');
  const d = await RawDisk.create(file, { size: MiB });
  await assert.rejects(d.read(new Uint8Array(512), 100), invalid(/multiples of the 512-byte sector/));
  await assert.rejects(d.write(new Uint8Array(100), 0), invalid(/multiples/));
  await assert.rejects(d.read(new Uint8Array(1024), MiB - 512), invalid(/past the end/));
  await assert.rejects(d.trim(-512, 512), invalid(/non-negative/));
  await assert.rejects(d.resize(1000), invalid(/multiple of 512/));
  await d.close();
  await assert.rejects(RawDisk.create(file, { size: MiB }), (e: unknown) =>
    isHvError(e, 'HV_ERR_ALREADY_EXISTS'),
  );
  await assert.rejects(
    RawDisk.create(path.join(dir, 'd.img'), { size: 0 }),
    invalid(/positive multiple of 512/),
  );
  await assert.rejects(RawDisk.open(path.join(dir, 'none.img')), (e: unknown) =>
    isHvError(e, 'HV_ERR_NOT_FOUND'),
  );
});
