#!/bin/bash
# pjsua2.sh TARBALL SYSROOT WORK OUT PYVER:PYSYSROOT...: cross-build pjsua2 wheels for aarch64.
#
# pjproject is configured fresh in WORK (a rerun of a tree after a failed `make dep` breaks) and
# built with static libraries against the sysroot's OpenSSL (also static: its .so links are hidden),
# so each `_pjsua2` module carries pjproject and OpenSSL and needs only libc and libstdc++. SWIG
# (swig on PATH, pinned in pyproject.toml) writes pjsua2.py and the wrapper once; the wrapper is
# compiled once per Python version against that version's headers from PYSYSROOT. One wheel per
# version lands in OUT, named like upstream's own setup.py names it (distribution pjsua2).
# The tarball's SHA256 must be one pinned in tools/pi/pjproject.sha256 before anything is unpacked.
set -euo pipefail
tarball=$1 sysroot=$2 work=$3 out=$4
shift 4
triplet=aarch64-linux-gnu
# shellcheck source=wheel.sh
source "$(dirname "$0")/wheel.sh"
jobs=${JOBS:-$(nproc)}
# Called from make -j: its jobserver is not passed down, which would force the pj build to -j1.
unset MAKEFLAGS MFLAGS MAKELEVEL

digest=$(sha256sum "$tarball" | cut -d' ' -f1)
grep -q "^$digest " "$(dirname "$0")/pjproject.sha256" \
    || { echo "pjsua2: $tarball (sha256 $digest) is not a pinned source in tools/pi/pjproject.sha256" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work" "$out"
tar -xzf "$tarball" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'pjproject-*' | head -n1)
version=$(sed -n 's/^export PJ_VERSION_\(MAJOR\|MINOR\|REV\) *:= *\([0-9]*\)$/\2/p' "$src/version.mak" | paste -sd.)

# Static OpenSSL: without the .so development links the linker takes libssl.a / libcrypto.a.
rm -f "$sysroot/usr/lib/$triplet/libssl.so" "$sysroot/usr/lib/$triplet/libcrypto.so"
inc="-I$sysroot/usr/include -I$sysroot/usr/include/$triplet"
printf '#define PJMEDIA_HAS_VIDEO 0\n' >"$src/pjlib/include/pj/config_site.h"
(
    cd "$src"
    # The pj build ignores CPPFLAGS: include paths go in CFLAGS. Codecs as in the x86_64 wheel.
    ./configure --host=$triplet --disable-video --disable-sound --disable-libuuid --disable-upnp \
        --disable-g7221-codec --disable-opencore-amr --disable-silk --disable-opus --disable-bcg729 \
        --disable-lyra --disable-sdl --disable-ffmpeg --disable-v4l2 --disable-openh264 --disable-vpx \
        --disable-libyuv --disable-libwebrtc --disable-android-mediacodec \
        --with-ssl="$sysroot/usr" \
        CFLAGS="-fPIC -O2 $inc" CXXFLAGS="-fPIC -O2 $inc" LDFLAGS="-L$sysroot/usr/lib/$triplet" \
        >"$work/configure.log" 2>&1 || { tail -n 30 "$work/configure.log" >&2; exit 1; }
    grep -q "OpenSSL library found" "$work/configure.log" \
        || { echo "pjsua2: configure did not find the sysroot's OpenSSL" >&2; exit 1; }
    make dep >"$work/make-dep.log" 2>&1 || { tail -n 30 "$work/make-dep.log" >&2; exit 1; }
    make -j"$jobs" >"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
)
swigdir=$src/pjsip-apps/src/swig/python
make -C "$swigdir" pjsua2_wrap.cpp >"$work/swig.log" 2>&1 || { tail -n 30 "$work/swig.log" >&2; exit 1; }
mapfile -t cflags < <(make -s --no-print-directory -C "$swigdir" -f helper.mak cflags)
mapfile -t ldflags < <(make -s --no-print-directory -C "$swigdir" -f helper.mak ldflags)
mapfile -t libs < <(make -s --no-print-directory -C "$swigdir" -f helper.mak libs)

for spec in "$@"; do
    pyver=${spec%%:*} pyroot=${spec#*:}
    tag=cp${pyver/./}
    stage=$work/wheel-$tag
    mkdir -p "$stage"
    cp "$swigdir/pjsua2.py" "$stage/"
    so=$stage/_pjsua2.cpython-${pyver/./}-$triplet.so
    $triplet-g++ -shared -O2 -fPIC "${cflags[@]}" \
        -I"$pyroot/usr/include" -I"$pyroot/usr/include/python$pyver" -I"$pyroot/usr/include/$triplet/python$pyver" \
        "$swigdir/pjsua2_wrap.cpp" -o "$so" "${ldflags[@]}" "${libs[@]/#/-l}" -Wl,--as-needed -static-libgcc
    $triplet-strip --strip-unneeded "$so"
    printf 'Metadata-Version: 2.1\nName: pjsua2\nVersion: %s\nSummary: %s\nLicense: GPL-2.0-or-later\nRequires-Python: ==%s.*\n' \
        "$version" "pjsua2 of pjproject $version for aarch64, cross-built from $(basename "$tarball")" "$pyver" \
        >"$work/METADATA-$tag"
    METADATA=$work/METADATA-$tag pack_wheel "$stage" pjsua2 "$version" "$tag-$tag-linux_aarch64" "$out"
done
