#!/bin/bash
# lgpio.sh SDIST WORK OUT PYVER:PYSYSROOT...: cross-build lgpio wheels for aarch64 (gpiozero's pin
# factory on the Pi 5 and Pi 4).
#
# PyPI has an aarch64 wheel of lgpio for CPython 3.11 only, and Debian no python3-lgpio (only Raspberry
# Pi OS's archive has one). The sdist carries the lgpio C library's source (src/lg*.c), and its setup.py
# builds it into the module when PYPI=1 (Extension('_lgpio', src/lg*.c + lgpio.i + src/rgpiod.c,
# libraries rt, dl, -O3 -pthread)): that build is repeated here with SWIG (pinned in pyproject.toml)
# and the cross compiler, once per Python version against that version's headers, so the phone needs
# no liblgpio from its OS.
set -euo pipefail
sdist=$1 work=$2 out=$3
shift 3
triplet=aarch64-linux-gnu
# shellcheck source=wheel.sh
source "$(dirname "$0")/wheel.sh"
rm -rf "$work"
mkdir -p "$work"
tar -xzf "$sdist" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'lgpio-*' | head -n1)
version=$(sed -n 's/^Version: //p' "$src/PKG-INFO" | head -n1)
(cd "$src" && swig -python -o lgpio_wrap.c lgpio.i) >"$work/swig.log" 2>&1 \
    || { tail -n 20 "$work/swig.log" >&2; exit 1; }
for spec in "$@"; do
    pyver=${spec%%:*} pyroot=${spec#*:}
    tag=cp${pyver/./}
    stage=$work/wheel-$tag
    so=$stage/_lgpio.cpython-${pyver/./}-$triplet.so
    mkdir -p "$stage"
    cp "$src/lgpio.py" "$stage/"
    $triplet-gcc -shared -fPIC -O3 -pthread -fno-strict-aliasing -I"$src/src" \
        -I"$pyroot/usr/include" -I"$pyroot/usr/include/python$pyver" -I"$pyroot/usr/include/$triplet/python$pyver" \
        "$src"/src/lg*.c "$src/src/rgpiod.c" "$src/lgpio_wrap.c" -o "$so" -Wl,--as-needed -lrt -ldl \
        >"$work/cc-$tag.log" 2>&1 || { tail -n 30 "$work/cc-$tag.log" >&2; exit 1; }
    $triplet-strip --strip-unneeded "$so"
    METADATA=$src/PKG-INFO pack_wheel "$stage" lgpio "$version" "$tag-$tag-linux_aarch64" "$out"
done
