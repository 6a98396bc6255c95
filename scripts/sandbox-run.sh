#!/bin/sh
# Runs a guest daemon (Debian's real hv_kvp_daemon through hvshim, or ours) in a throw-away guest-like
# environment. Meant to be started as:  unshare -m -n -u --fork --kill-child scripts/sandbox-run.sh CMD...
# Inside the new mount/network/UTS namespaces it:
#   - binds $SANDBOX_STATE over /var/lib (the daemon's /var/lib/hyperv lands there, readable outside),
#   - binds $SANDBOX_SCRIPTS over /usr/libexec/hypervkvpd when set (logging stand-ins for the scripts),
#   - binds a fixed /etc/resolv.conf, sets hostname "vm", remounts sysfs for this netns,
#   - creates eth0 (veth, MAC 00:15:5d:00:00:01, 192.0.2.10/24, 2001:db8::10/64, default via 192.0.2.1),
#   - with SANDBOX_DEVICE_ID set, binds a synthetic /sys/class/net where eth0/device/device_id holds it
#     (what netvsc exposes; SET_IP_INFO finds adapters by it),
# then execs CMD. Nothing outside the namespaces is changed.
set -eu
: "${SANDBOX_STATE:?SANDBOX_STATE must name a directory}"
mount --make-rprivate /
mount --bind "$SANDBOX_STATE" /var/lib
printf 'nameserver 192.0.2.53\nnameserver 2001:db8::53\n' > "$SANDBOX_STATE/.resolv.conf"
mount --bind "$SANDBOX_STATE/.resolv.conf" /etc/resolv.conf
if [ -n "${SANDBOX_SCRIPTS:-}" ]; then
  mkdir -p /usr/libexec/hypervkvpd 2>/dev/null || true
  mount --bind "$SANDBOX_SCRIPTS" /usr/libexec/hypervkvpd
fi
hostname vm
mount -t sysfs sysfs /sys
ip link set lo up
ip link add eth0 address 00:15:5d:00:00:01 type veth peer name peer0
ip addr add 192.0.2.10/24 dev eth0
ip -6 addr add 2001:db8::10/64 dev eth0 nodad
ip link set eth0 up
ip link set peer0 up
ip route add default via 192.0.2.1
if [ -n "${SANDBOX_DEVICE_ID:-}" ]; then
  fake="$SANDBOX_STATE/.sysnet"
  mkdir -p "$fake/eth0/device"
  echo "$SANDBOX_DEVICE_ID" > "$fake/eth0/device/device_id"
  cat /sys/class/net/eth0/address > "$fake/eth0/address"
  mount --bind "$fake" /sys/class/net
fi
exec "$@"
