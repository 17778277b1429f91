#!/bin/bash
# inroot.sh [--offline] ROOT COMMAND...: run COMMAND in an arm64 root file system under QEMU.
#
# A private mount namespace gets /proc, /dev, /dev/shm and /sys for the root, so nothing stays
# mounted when COMMAND ends. The network namespace is the host's (the root reaches the host's
# servers on 127.0.0.1) unless --offline: then a fresh one holding only loopback.
# QEMU_CPU=cortex-a72 (the Pi 4's core): trixie's binaries use pointer authentication, which QEMU's
# default CPU emulates several times slower.
set -euo pipefail
net=()
if [ "${1:-}" = --offline ]; then
    net=(--net)
    shift
fi
root=$(realpath "$1")
shift
export QEMU_CPU=${QEMU_CPU:-cortex-a72}
OFFLINE=${net[*]:-} exec unshare --mount --propagation private "${net[@]}" -- /bin/bash -c '
    set -e
    root=$1; shift
    if [ -n "$OFFLINE" ]; then ip link set lo up 2>/dev/null || true; fi
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t sysfs sysfs "$root/sys"
    mkdir -p "$root/dev/shm" && mount -t tmpfs tmpfs "$root/dev/shm"
    exec chroot "$root" "$@"
' inroot "$root" "$@"
