/**
 * The control page at the start of each VMBus ring (one ring = this 4096-byte page + a data area whose size
 * is a multiple of 4096). Counterparts: Linux `struct hv_ring_buffer` (include/linux/hyperv.h), FreeBSD
 * `struct vmbus_bufring` (sys/dev/hyperv/vmbus/vmbus_reg.h), OpenVMM `vmbus_ring` control words
 * (vm/devices/vmbus/vmbus_ring/src/lib.rs). Reference: vmbus-core-ics.md §2.1, §2.4.
 *
 * Indexes are byte offsets into the data area, multiples of 8 and below the data size; empty ⇔
 * write_index == read_index. write_index and pending_send_sz belong to the producer, read_index and
 * interrupt_mask to the consumer.
 */

/** Linux `struct hv_ring_buffer` (4 KiB pages): sizeof 4096, data (`buffer[]`) at 4096. */
export const HV_RING_BUFFER = {
  size: 4096,
  offsets: {
    write_index: 0,
    read_index: 4,
    interrupt_mask: 8,
    pending_send_sz: 12,
    reserved1: 16,
    feature_bits: 64,
    reserved2: 68,
    buffer: 4096,
  },
} as const;

/** Bytes of the control page; the data area starts here. */
export const RING_CONTROL_SIZE = 4096;

/**
 * `feature_bits` bit0 (`feat_pending_send_sz`): set by the producer of this ring; promises to set
 * pending_send_sz here when blocked and to honour pending_send_sz in the other ring (vmbus-core-ics.md §2.4).
 */
export const RING_FEATURE_PENDING_SEND_SZ = 1;

/** Int32 word indexes of the control fields (byte offset / 4), for Atomics on an Int32Array over the page. */
export const RING_WORD = {
  write_index: 0,
  read_index: 1,
  interrupt_mask: 2,
  pending_send_sz: 3,
  feature_bits: 16,
} as const;

/** Bytes of ring data the producer may use: write is allowed only while packet+trailer < this (strictly). */
export function ringBytesToWrite(writeIndex: number, readIndex: number, dataSize: number): number {
  return readIndex > writeIndex ? readIndex - writeIndex : dataSize - (writeIndex - readIndex);
}

/** Bytes published and not yet consumed. */
export function ringBytesToRead(writeIndex: number, readIndex: number, dataSize: number): number {
  return writeIndex >= readIndex ? writeIndex - readIndex : dataSize - readIndex + writeIndex;
}
