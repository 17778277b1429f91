#!/bin/bash
# native.sh TARBALL OUT: the pjsua2 wheel of this x86_64 machine for PYTHON (the venv's), in OUT
# (`make deps`, which names OUT after a digest of the tarball, config_site.h and the build scripts,
# so it builds once per change). tools/pjsua2/build.sh does the build, linked against the system's
# OpenSSL 3 dynamically (libssl-dev; libssl3 is what Python's own ssl module maps). The build tree is
# removed once the wheel is there.
set -euo pipefail
tarball=$1 out=$2
PYTHON=${PYTHON:-python3}
export PYTHON
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pyinc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
start=$SECONDS
rm -rf "$out"
OPENSSL=shared "$(dirname "$0")/build.sh" "$tarball" "$out/work" "$out" "$(gcc -dumpmachine)" "$pyver:$pyinc"
rm -rf "$out/work"
echo "pjsua2: $(basename "$out"/pjsua2-*.whl) built in $((SECONDS - start)) s"
