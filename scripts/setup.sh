#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian 12 machine: the Debian packages that serve as real
# peers and oracles, then the npm dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages. Each line says which tests need it.
PKGS=(
  gcc make                      # layout oracle (C against kernel headers), LD_PRELOAD shim
  linux-headers-amd64           # layout oracle: include/linux/hyperv.h of Debian's kernel
  qemu-utils                    # disk oracle: qemu-img, qemu-io
  libvhdi-utils python3-libvhdi # disk oracle: vhdiinfo, pyvhdi
  e2fsprogs                     # mke2fs -d / e2fsck -fn on converted images
  hyperv-daemons iproute2       # KVP parity/bench: Debian's real hv_kvp_daemon (+ fcopy, vss); ip for the sandbox
  libnbd-bin                    # storage: nbdinfo, nbdcopy against our NBD export of a guest disk
  fio                           # storage: fio nbd engine verify job and bench/storage IOPS
  linux-libc-dev                # fcopy/VSS codec oracle: uapi linux/hyperv.h the hyperv-daemons are built with
)
missing=()
for p in "${PKGS[@]}"; do
  [[ "$p" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
npm ci --no-audit --no-fund
