/**
 * Byte layouts of the VMBus channel messages, named by the Linux struct and field names so a layout
 * oracle can compare them with gcc's `sizeof`/`offsetof` of include/linux/hyperv.h (Linux 6.1). Offsets
 * include the 8-byte `struct vmbus_channel_message_header`. Bit-fields (offer byte 189 bit0
 * `monitor_allocated`, u16 at 190 bit0 `is_dedicated_interrupt`) have no offsetof and are listed in
 * `bitfieldBytes`. Fields Linux 6.1 does not declare (OpenVMM and 6.0 additions) are in
 * channel-messages.ts beside their codec.
 */

/** Linux `struct vmbus_channel_message_header` (8 bytes). */
export const VMBUS_CHANNEL_MESSAGE_HEADER = { size: 8, offsets: { msgtype: 0, padding: 4 } } as const;

/** Linux `struct vmbus_channel_offer` (176 bytes, inside the offer message at offset 8). */
export const VMBUS_CHANNEL_OFFER = {
  size: 176,
  offsets: {
    if_type: 0,
    if_instance: 16,
    reserved1: 32,
    reserved2: 40,
    chn_flags: 48,
    mmio_megabytes: 50,
    u: 52,
    'u.pipe.pipe_mode': 52,
    'u.pipe.user_def': 56,
    sub_channel_index: 172,
    reserved3: 174,
  },
} as const;

/** Linux `struct vmbus_channel_offer_channel` (CHANNELMSG_OFFERCHANNEL, 196 bytes). */
export const VMBUS_CHANNEL_OFFER_CHANNEL = {
  size: 196,
  offsets: {
    header: 0,
    offer: 8,
    'offer.if_type': 8,
    'offer.if_instance': 24,
    'offer.reserved1': 40,
    'offer.reserved2': 48,
    'offer.chn_flags': 56,
    'offer.mmio_megabytes': 58,
    'offer.u': 60,
    'offer.sub_channel_index': 180,
    'offer.reserved3': 182,
    child_relid: 184,
    monitorid: 188,
    connection_id: 192,
  },
  bitfieldBytes: { monitor_allocated: 189, is_dedicated_interrupt: 190 },
} as const;

/** Linux `struct vmbus_channel_rescind_offer` (12 bytes). */
export const VMBUS_CHANNEL_RESCIND_OFFER = { size: 12, offsets: { header: 0, child_relid: 8 } } as const;

/** Linux `struct vmbus_channel_open_channel` (CHANNELMSG_OPENCHANNEL, 148 bytes). */
export const VMBUS_CHANNEL_OPEN_CHANNEL = {
  size: 148,
  offsets: {
    header: 0,
    child_relid: 8,
    openid: 12,
    ringbuffer_gpadlhandle: 16,
    target_vp: 20,
    downstream_ringbuffer_pageoffset: 24,
    userdata: 28,
  },
} as const;

/** Linux `struct vmbus_channel_open_result` (20 bytes). */
export const VMBUS_CHANNEL_OPEN_RESULT = {
  size: 20,
  offsets: { header: 0, child_relid: 8, openid: 12, status: 16 },
} as const;

/** Linux `struct vmbus_channel_close_channel` (12 bytes). */
export const VMBUS_CHANNEL_CLOSE_CHANNEL = { size: 12, offsets: { header: 0, child_relid: 8 } } as const;

/** Linux `struct vmbus_channel_gpadl_header` (20 bytes + ranges). */
export const VMBUS_CHANNEL_GPADL_HEADER = {
  size: 20,
  offsets: { header: 0, child_relid: 8, gpadl: 12, range_buflen: 16, rangecount: 18, range: 20 },
} as const;

/** Linux `struct vmbus_channel_gpadl_body` (16 bytes + `pfn[]` u64). */
export const VMBUS_CHANNEL_GPADL_BODY = {
  size: 16,
  offsets: { header: 0, msgnumber: 8, gpadl: 12, pfn: 16 },
} as const;

/** Linux `struct vmbus_channel_gpadl_created` (20 bytes). */
export const VMBUS_CHANNEL_GPADL_CREATED = {
  size: 20,
  offsets: { header: 0, child_relid: 8, gpadl: 12, creation_status: 16 },
} as const;

/** Linux `struct vmbus_channel_gpadl_teardown` (16 bytes). */
export const VMBUS_CHANNEL_GPADL_TEARDOWN = {
  size: 16,
  offsets: { header: 0, child_relid: 8, gpadl: 12 },
} as const;

/** Linux `struct vmbus_channel_gpadl_torndown` (12 bytes). */
export const VMBUS_CHANNEL_GPADL_TORNDOWN = { size: 12, offsets: { header: 0, gpadl: 8 } } as const;

/** Linux `struct vmbus_channel_relid_released` (12 bytes). */
export const VMBUS_CHANNEL_RELID_RELEASED = { size: 12, offsets: { header: 0, child_relid: 8 } } as const;

/** Linux `struct vmbus_channel_initiate_contact` (40 bytes; msg_sint overlays interrupt_page). */
export const VMBUS_CHANNEL_INITIATE_CONTACT = {
  size: 40,
  offsets: {
    header: 0,
    vmbus_version_requested: 8,
    target_vcpu: 12,
    interrupt_page: 16,
    msg_sint: 16,
    monitor_page1: 24,
    monitor_page2: 32,
  },
} as const;

/** Linux `struct vmbus_channel_version_response` (16 bytes). */
export const VMBUS_CHANNEL_VERSION_RESPONSE = {
  size: 16,
  offsets: { header: 0, version_supported: 8, connection_state: 9, padding: 10, msg_conn_id: 12 },
} as const;

/** Linux `struct vmbus_channel_tl_connect_request` (40 bytes; v2 adds silo_id, 56). */
export const VMBUS_CHANNEL_TL_CONNECT_REQUEST = {
  size: 40,
  offsets: { header: 0, guest_endpoint_id: 8, host_service_id: 24 },
} as const;

/** Linux `struct vmbus_channel_modifychannel` (16 bytes). */
export const VMBUS_CHANNEL_MODIFYCHANNEL = {
  size: 16,
  offsets: { header: 0, child_relid: 8, target_vp: 12 },
} as const;

/** Linux `struct vmbus_channel_modifychannel_response` (16 bytes). */
export const VMBUS_CHANNEL_MODIFYCHANNEL_RESPONSE = {
  size: 16,
  offsets: { header: 0, child_relid: 8, status: 12 },
} as const;

/** Linux `struct hv_message_header` (include/asm-generic/hyperv-tlfs.h, 16 bytes). */
export const HV_MESSAGE_HEADER = {
  size: 16,
  offsets: { message_type: 0, payload_size: 4, message_flags: 5, reserved: 6, sender: 8, port: 8 },
} as const;

/** Linux `struct hv_message` (256 bytes). */
export const HV_MESSAGE = { size: 256, offsets: { header: 0, u: 16 } } as const;

/** Every layout above by Linux struct name, for the layout oracle. */
export const CHANNEL_MESSAGE_LAYOUTS = {
  vmbus_channel_message_header: VMBUS_CHANNEL_MESSAGE_HEADER,
  vmbus_channel_offer: VMBUS_CHANNEL_OFFER,
  vmbus_channel_offer_channel: VMBUS_CHANNEL_OFFER_CHANNEL,
  vmbus_channel_rescind_offer: VMBUS_CHANNEL_RESCIND_OFFER,
  vmbus_channel_open_channel: VMBUS_CHANNEL_OPEN_CHANNEL,
  vmbus_channel_open_result: VMBUS_CHANNEL_OPEN_RESULT,
  vmbus_channel_close_channel: VMBUS_CHANNEL_CLOSE_CHANNEL,
  vmbus_channel_gpadl_header: VMBUS_CHANNEL_GPADL_HEADER,
  vmbus_channel_gpadl_body: VMBUS_CHANNEL_GPADL_BODY,
  vmbus_channel_gpadl_created: VMBUS_CHANNEL_GPADL_CREATED,
  vmbus_channel_gpadl_teardown: VMBUS_CHANNEL_GPADL_TEARDOWN,
  vmbus_channel_gpadl_torndown: VMBUS_CHANNEL_GPADL_TORNDOWN,
  vmbus_channel_relid_released: VMBUS_CHANNEL_RELID_RELEASED,
  vmbus_channel_initiate_contact: VMBUS_CHANNEL_INITIATE_CONTACT,
  vmbus_channel_version_response: VMBUS_CHANNEL_VERSION_RESPONSE,
  vmbus_channel_tl_connect_request: VMBUS_CHANNEL_TL_CONNECT_REQUEST,
  vmbus_channel_modifychannel: VMBUS_CHANNEL_MODIFYCHANNEL,
  vmbus_channel_modifychannel_response: VMBUS_CHANNEL_MODIFYCHANNEL_RESPONSE,
  hv_message_header: HV_MESSAGE_HEADER,
  hv_message: HV_MESSAGE,
} as const;
