/**
 * The in-process side of a uapi device node (src/guest/devnode.ts): a daemon in the guest kernel's thread
 * that `listen`s gets each message inside the driver's send and can answer before it returns; the
 * read()-based path keeps Linux hv_utils_transport's one-pending-message rule.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UapiDevNode } from '../../src/guest/devnode.ts';

function node() {
  const fromDaemon: number[][] = [];
  let released = 0;
  const n = new UapiDevNode('/dev/vmbus/hv_test', {
    onWrite: (m) => fromDaemon.push([...m]),
    onRelease: () => released++,
  });
  return { n, fromDaemon, released: () => released };
}

test('a listening daemon answers inside send: the driver has the reply when send returns', () => {
  const { n, fromDaemon } = node();
  const f = n.open();
  const seen: number[][] = [];
  f.listen?.(
    (m) => {
      seen.push([...m]);
      f.write(Uint8Array.of(m[0]! + 1));
    },
    () => {},
  );
  assert.equal(n.send(Uint8Array.of(1)), true);
  assert.deepEqual(seen, [[1]]);
  assert.deepEqual(fromDaemon, [[2]]);
  assert.equal(n.send(Uint8Array.of(5)), true, 'nothing stays pending after an inline answer');
  assert.deepEqual(fromDaemon, [[2], [6]]);
});

test('a message sent before listen is handed over when the daemon starts listening', () => {
  const { n } = node();
  const f = n.open();
  assert.equal(n.send(Uint8Array.of(7)), true);
  assert.equal(n.send(Uint8Array.of(8)), false, 'one unread message at a time (Linux -EBUSY)');
  const seen: number[] = [];
  f.listen?.(
    (m) => seen.push(m[0]!),
    () => {},
  );
  assert.deepEqual(seen, [7]);
});

test('closing a listening file runs its onClose once and releases the node for the next daemon', () => {
  const { n, released } = node();
  const f = n.open();
  let closed = 0;
  f.listen?.(
    () => {},
    () => closed++,
  );
  f.close();
  f.close();
  assert.equal(closed, 1);
  assert.equal(released(), 1);
  assert.equal(n.send(Uint8Array.of(1)), false, 'no daemon');
  assert.doesNotThrow(() => n.open());
});
