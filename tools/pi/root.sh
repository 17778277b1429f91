#!/bin/bash
# root.sh SUITE DIR [PACKAGE...]: an arm64 Debian root file system in DIR (mmdebstrap, under QEMU):
# what make test-aarch64 uses in place of a Raspberry Pi OS root file system (the tests copy it).
#
# The root gets what the phone's first boot takes from the image (python3, libasound2, passwd for
# useradd; Raspberry Pi OS Lite has them all), plus the PACKAGEs. util-linux brings setpriv, which
# runs the service as its user. mmdebstrap keeps services from starting while it installs (its own policy-rc.d), so the
# daemons among them (kamailio, mosquitto) do not start on the host's network.
set -euo pipefail
suite=$1 dir=$2
shift 2
mirror=${MIRROR:-http://deb.debian.org/debian}
case "$suite" in
    bookworm) alsa=libasound2 ;;
    *) alsa=libasound2t64 ;;
esac
packages=$(printf '%s,' python3 "$alsa" passwd "$@")
mkdir -p "$(dirname "$dir")"
rm -rf "$dir.part"
QEMU_CPU=${QEMU_CPU:-cortex-a72} mmdebstrap --quiet --arch=arm64 --variant=apt \
    --include="${packages%,}" "$suite" "$dir.part" "$mirror"
rm -rf "$dir"
mv "$dir.part" "$dir"
