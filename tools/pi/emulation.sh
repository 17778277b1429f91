#!/bin/bash
# emulation.sh: make sure aarch64 binaries run here (QEMU user mode through binfmt_misc).
# systemd mounts binfmt_misc and registers qemu-aarch64 at boot; where no systemd runs (CI's
# machine, containers) this does it by hand. Idempotent.
set -euo pipefail
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || { echo "qemu-aarch64 binfmt disabled" >&2; exit 1; }
