#!/bin/bash
# pjsua2.sh TARBALL SYSROOT WORK OUT PYVER:PYSYSROOT...: cross-build pjsua2 wheels for aarch64.
#
# tools/pjsua2/build.sh does the build, as for the x86_64 wheel (same config_site.h and configure
# flags), against SYSROOT's headers and its OpenSSL linked statically, so each `_pjsua2` module carries
# pjproject and OpenSSL and needs only libc and libstdc++. Each PYSYSROOT holds that Python's headers.
set -euo pipefail
tarball=$1 sysroot=$2 work=$3 out=$4
shift 4
triplet=aarch64-linux-gnu
specs=()
for spec in "$@"; do
    pyver=${spec%%:*} pyroot=${spec#*:}
    specs+=("$pyver:$pyroot/usr/include:$pyroot/usr/include/python$pyver:$pyroot/usr/include/$triplet/python$pyver")
done
SYSROOT=$sysroot OPENSSL=static JOBS=${JOBS:-$(nproc)} \
    "$(dirname "$0")/../pjsua2/build.sh" "$tarball" "$work" "$out" "$triplet" "${specs[@]}"
