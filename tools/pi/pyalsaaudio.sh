#!/bin/bash
# pyalsaaudio.sh SDIST SYSROOT WORK OUT PYVER:PYSYSROOT...: cross-build pyalsaaudio wheels for aarch64.
#
# The sdist is one C file linked against libasound (setup.py: Extension('alsaaudio', ['alsaaudio.c'],
# libraries=['asound'])); it is compiled as setup.py would, once per Python version, against the
# sysroot's libasound2-dev and that version's headers. The phone then needs only libasound.so.2.
set -euo pipefail
sdist=$1 sysroot=$2 work=$3 out=$4
shift 4
triplet=aarch64-linux-gnu
# shellcheck source=wheel.sh
source "$(dirname "$0")/wheel.sh"
rm -rf "$work"
mkdir -p "$work"
tar -xzf "$sdist" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'pyalsaaudio-*' | head -n1)
version=$(sed -n 's/^Version: //p' "$src/PKG-INFO")
for spec in "$@"; do
    pyver=${spec%%:*} pyroot=${spec#*:}
    tag=cp${pyver/./}
    stage=$work/wheel-$tag
    mkdir -p "$stage"
    cp "$src/alsaaudio.pyi" "$stage/"
    $triplet-gcc -shared -O2 -fPIC -fno-strict-aliasing -Wall \
        -I"$sysroot/usr/include" -I"$sysroot/usr/include/$triplet" \
        -I"$pyroot/usr/include" -I"$pyroot/usr/include/python$pyver" -I"$pyroot/usr/include/$triplet/python$pyver" \
        "$src/alsaaudio.c" -o "$stage/alsaaudio.cpython-${pyver/./}-$triplet.so" \
        -L"$sysroot/usr/lib/$triplet" -lasound
    $triplet-strip --strip-unneeded "$stage/alsaaudio.cpython-${pyver/./}-$triplet.so"
    METADATA=$src/PKG-INFO pack_wheel "$stage" pyalsaaudio "$version" "$tag-$tag-linux_aarch64" "$out"
done
