#!/bin/bash
# build.sh TARBALL WORK OUT TRIPLET PYVER:INCDIR[:INCDIR...]...: pjsua2 wheels for TRIPLET (the
# build machine's own, x86_64-linux-gnu, or a cross target such as aarch64-linux-gnu), one per Python.
#
# Shared by tools/pjsua2/native.sh (the x86_64 phone and lab, `make deps`) and tools/pi/pjsua2.sh
# (the Raspberry Pi, `make dist-pi`), so both phones run the same pjproject: configured fresh in WORK
# (a rerun of a tree after a failed `make dep` breaks) with tools/pjsua2/config_site.h and the same
# configure flags, only the libraries built (`make lib`: no pjsua app, samples or test programs),
# static pjproject libraries. SWIG (swig on PATH, pinned in pyproject.toml) writes pjsua2.py and the
# wrapper once; the wrapper is compiled once per Python against its headers (INCDIRs). One wheel per
# Python lands in OUT, named like upstream's own setup.py names it (distribution pjsua2).
# The tarball's SHA256 must be one pinned in tools/pi/pjproject.sha256 before anything is unpacked.
#
# Environment: SYSROOT (cross builds: headers and libraries of the target), OPENSSL=shared (link the
# system's libssl3/libcrypto3 dynamically: the pages Python's ssl module maps already) or static (the
# Pi: the sysroot's OpenSSL inside the module), JOBS (make -j, default 2), PYTHON (for `wheel pack`).
set -euo pipefail
tarball=$(realpath "$1") work=$(realpath -m "$2") out=$(realpath -m "$3") triplet=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../pi/wheel.sh
source "$here/../pi/wheel.sh"
sysroot=${SYSROOT:-}
openssl=${OPENSSL:-shared}
jobs=${JOBS:-2}
# Called from make -j: its jobserver is not passed down, which would force the pj build to -j1.
unset MAKEFLAGS MFLAGS MAKELEVEL
native=$(gcc -dumpmachine)
if [ "$triplet" = "$native" ]; then
    cross=() tool=
else
    cross=(--host="$triplet") tool=$triplet-
fi
arch=${triplet%%-*}

digest=$(sha256sum "$tarball" | cut -d' ' -f1)
grep -q "^$digest " "$here/../pi/pjproject.sha256" \
    || { echo "pjsua2: $tarball (sha256 $digest) is not a pinned source in tools/pi/pjproject.sha256" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work" "$out"
tar -xzf "$tarball" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'pjproject-*' | head -n1)
version=$(sed -n 's/^export PJ_VERSION_\(MAJOR\|MINOR\|REV\) *:= *\([0-9]*\)$/\2/p' "$src/version.mak" | paste -sd.)
cp "$here/config_site.h" "$src/pjlib/include/pj/config_site.h"

# Natively configure finds the system's OpenSSL by itself (a bare --with-ssl would add -Iyes/include).
inc= lib= ssl=()
if [ -n "$sysroot" ]; then
    inc="-I$sysroot/usr/include -I$sysroot/usr/include/$triplet"
    lib="-L$sysroot/usr/lib/$triplet"
    ssl=(--with-ssl="$sysroot/usr")
fi
if [ "$openssl" = static ]; then
    # Without the .so development links the linker takes libssl.a / libcrypto.a.
    [ -n "$sysroot" ] || { echo "pjsua2: OPENSSL=static needs a SYSROOT whose links it may remove" >&2; exit 1; }
    rm -f "$sysroot/usr/lib/$triplet/libssl.so" "$sysroot/usr/lib/$triplet/libcrypto.so"
fi
(
    cd "$src"
    # The pj build ignores CPPFLAGS: include paths go in CFLAGS. The codec flags match config_site.h.
    # Function and data sections let the module's link drop what the wrapper never reaches.
    ./configure "${cross[@]}" --disable-video --disable-sound --disable-libuuid --disable-upnp \
        --disable-speex-aec --disable-speex-codec --disable-ilbc-codec --disable-gsm-codec \
        --disable-l16-codec --disable-g7221-codec --disable-opencore-amr --disable-silk --disable-opus \
        --disable-bcg729 --disable-lyra --disable-sdl --disable-ffmpeg --disable-v4l2 --disable-openh264 \
        --disable-vpx --disable-libyuv --disable-libwebrtc --disable-android-mediacodec "${ssl[@]}" \
        CFLAGS="-fPIC -O2 -ffunction-sections -fdata-sections $inc" \
        CXXFLAGS="-fPIC -O2 -ffunction-sections -fdata-sections $inc" LDFLAGS="$lib" \
        >"$work/configure.log" 2>&1 || { tail -n 30 "$work/configure.log" >&2; exit 1; }
    grep -q "OpenSSL library found" "$work/configure.log" \
        || { echo "pjsua2: configure did not find OpenSSL (libssl-dev)" >&2; exit 1; }
    make dep >"$work/make-dep.log" 2>&1 || { tail -n 30 "$work/make-dep.log" >&2; exit 1; }
    make -j"$jobs" lib >"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
)
swigdir=$src/pjsip-apps/src/swig/python
# GEN_DOC= drops upstream's -doxygen: ~1,500 docstrings that only help() shows made pjsua2.py 571 KB
# (317 without) and its unmarshal and exec before every REGISTER 26.6 -> 18.5 ms (docs/SIP.md).
make -C "$swigdir" GEN_DOC= pjsua2_wrap.cpp >"$work/swig.log" 2>&1 || { tail -n 30 "$work/swig.log" >&2; exit 1; }
mapfile -t cflags < <(make -s --no-print-directory -C "$swigdir" -f helper.mak cflags)
mapfile -t ldflags < <(make -s --no-print-directory -C "$swigdir" -f helper.mak ldflags)
mapfile -t libs < <(make -s --no-print-directory -C "$swigdir" -f helper.mak libs)

for spec in "$@"; do
    pyver=${spec%%:*}
    IFS=: read -r -a pyinc <<<"${spec#*:}"
    tag=cp${pyver/./}
    stage=$work/wheel-$tag
    mkdir -p "$stage"
    cp "$swigdir/pjsua2.py" "$stage/"
    so=$stage/_pjsua2.cpython-${pyver/./}-$triplet.so
    # Only exports.map's symbols leave the module (hidden visibility for the wrapper's own);
    # --gc-sections drops code the wrapper never reaches (6.7 -> 5.9 MB on x86_64).
    "${tool}g++" -shared -O2 -fPIC -fvisibility=hidden -fvisibility-inlines-hidden "${cflags[@]}" \
        "${pyinc[@]/#/-I}" "$swigdir/pjsua2_wrap.cpp" -o "$so" "${ldflags[@]}" "${libs[@]/#/-l}" \
        -Wl,--as-needed -Wl,--gc-sections -Wl,--version-script="$here/exports.map" -static-libgcc
    exported=$("${tool}nm" -D --defined-only "$so" | awk '{print $3}')
    for name in $(sed -n 's/^ *\([A-Za-z_][A-Za-z0-9_]*\);$/\1/p' "$here/exports.map"); do
        grep -qx "$name" <<<"$exported" || { echo "pjsua2: $name is not exported by $so" >&2; exit 1; }
    done
    "${tool}strip" --strip-unneeded "$so"
    printf 'Metadata-Version: 2.1\nName: pjsua2\nVersion: %s\nSummary: %s\nLicense: GPL-2.0-or-later\nRequires-Python: ==%s.*\n' \
        "$version" "pjsua2 of pjproject $version for $arch, built from $(basename "$tarball") (OpenSSL $openssl)" \
        "$pyver" >"$work/METADATA-$tag"
    METADATA=$work/METADATA-$tag pack_wheel "$stage" pjsua2 "$version" "$tag-$tag-linux_$arch" "$out"
done
