#!/bin/bash
# dist.sh OUT WORK: the Raspberry Pi bundle (make dist-pi), built on an x86_64 Debian machine.
#
#   OUT/deskphone-<version>-py3-none-any.whl   the firmware
#   OUT/wheelhouse/                            everything it imports on aarch64, for CPython 3.11
#                                              (Raspberry Pi OS bookworm) and 3.13 (trixie): pjsua2,
#                                              pyalsaaudio and lgpio cross-built here, the rest from PyPI
#   OUT/SHA256SUMS
#
# The first boot installs it with `pip --no-index`: no internet, no compiler on the phone.
# Environment: PYTHON (a venv with wheel and swig), PJPROJECT_TARBALL (its SHA256 pinned in
# tools/pi/pjproject.sha256), MIRROR (Debian archive for the arm64 sysroots).
set -euo pipefail
out=$(realpath -m "$1") work=$(realpath -m "$2")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
PYTHON=${PYTHON:-python3}
export PYTHON
tarball=$(realpath "${PJPROJECT_TARBALL:?set PJPROJECT_TARBALL to a pjproject-2.15.1.tar.gz pinned in tools/pi/pjproject.sha256}")
# The releases the bundle serves: Debian suite (for headers) and its CPython.
releases=(bookworm:3.11 trixie:3.13)
pyalsaaudio=pyalsaaudio==0.11.0
lgpio=lgpio==0.2.2.0

rm -rf "$out"
mkdir -p "$out/wheelhouse" "$work"
start=$SECONDS
step() { printf 'dist-pi: %s (%ss)\n' "$*" $((SECONDS - start)); }

step "arm64 sysroots (apt-get download under a private apt state)"
rm -rf "$work/sysroot-"*
"$here/sysroot.sh" bookworm "$work/sysroot-bookworm" libssl-dev libssl3 libasound2-dev libasound2 \
    libpython3.11-dev >/dev/null
"$here/sysroot.sh" trixie "$work/sysroot-trixie" libpython3.13-dev >/dev/null
specs=()
for release in "${releases[@]}"; do
    specs+=("${release#*:}:$work/sysroot-${release%%:*}")
done

step "pjsua2 (pjproject cross-built for aarch64-linux-gnu)"
"$here/pjsua2.sh" "$tarball" "$work/sysroot-bookworm" "$work/pjsua2" "$out/wheelhouse" "${specs[@]}"

step "pyalsaaudio (cross-built from its sdist)"
rm -rf "$work/sdist"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: -d "$work/sdist" "$pyalsaaudio"
"$here/pyalsaaudio.sh" "$work/sdist"/pyalsaaudio-*.tar.gz "$work/sysroot-bookworm" "$work/pyalsaaudio" \
    "$out/wheelhouse" "${specs[@]}"

step "lgpio (cross-built from its sdist, the lgpio C library inside)"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: -d "$work/sdist" "$lgpio"
"$here/lgpio.sh" "$work/sdist"/lgpio-*.tar.gz "$work/lgpio" "$out/wheelhouse" "${specs[@]}"

step "the deskphone wheel and the wheels of PyPI"
"$PYTHON" -m pip wheel -q --no-deps -w "$out" "$repo"
for release in "${releases[@]}"; do
    pyver=${release#*:}
    "$PYTHON" -m pip download -q --only-binary :all: --implementation cp --python-version "$pyver" \
        --platform manylinux_2_34_aarch64 --platform manylinux2014_aarch64 --platform linux_aarch64 \
        -d "$out/wheelhouse" pip gpiozero paho-mqtt
done
(cd "$out" && find . -type f ! -name SHA256SUMS -printf '%P\n' | sort | xargs sha256sum >SHA256SUMS)

step "checking the wheels"
"$PYTHON" "$here/check_wheels.py" "$out"
step "done: $(du -sh "$out" | cut -f1) in $out"
