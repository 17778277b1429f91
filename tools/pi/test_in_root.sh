#!/bin/bash
# test_in_root.sh ROOT BUNDLE WORK: the unit tests and tests/sip_stack on aarch64, in an arm64 root.
#
# The root (tools/pi/root.sh with kamailio, baresip-core and mosquitto) gets this checkout's sources in
# /src and a venv with the bundle's wheels (pjsua2 and pyalsaaudio as built by make dist-pi) plus the
# test tools, downloaded here as aarch64 wheels for the root's Python, so the root needs no network.
set -euo pipefail
root=$(realpath "$1") bundle=$(realpath "$2") work=$(realpath -m "$3")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
PYTHON=${PYTHON:-python3}
pyver=$("$here/inroot.sh" "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')

mkdir -p "$work/test-wheels"
"$PYTHON" -m pip download -q --only-binary :all: --implementation cp --python-version "$pyver" \
    --platform manylinux_2_34_aarch64 --platform manylinux2014_aarch64 --platform linux_aarch64 \
    -d "$work/test-wheels" pytest pytest-timeout hypothesis numpy jsonschema pyyaml cryptography
rm -rf "$root/src" "$root/wheels"
mkdir -p "$root/src" "$root/wheels"
(cd "$repo" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$root/src"
cp "$bundle"/wheelhouse/*.whl "$work"/test-wheels/*.whl "$root/wheels/"
pip_wheel=$(cd "$root/wheels" && ls pip-*.whl | head -n1)
"$here/inroot.sh" --offline "$root" /bin/bash -c "
    set -e
    python3 -m venv --without-pip /opt/testvenv
    /opt/testvenv/bin/python /wheels/$pip_wheel/pip install -q --no-index --find-links /wheels \
        pip pjsua2 pyalsaaudio gpiozero paho-mqtt pytest pytest-timeout hypothesis numpy jsonschema pyyaml cryptography
"
# The host's network: the tests' servers listen on 127.0.0.1 and the root shares it.
# Both runs go ahead; a failure in either fails the whole.
exec "$here/inroot.sh" "$root" /bin/bash -c "
    cd /src && export PYTHONPATH=/src HOME=/tmp DESKPHONE_EMULATED=1
    status=0
    /opt/testvenv/bin/python -m pytest -q -p no:cacheprovider tests/sip_stack || status=1
    /opt/testvenv/bin/python -m pytest -q -p no:cacheprovider -m 'not e2e' tests/board tests/hal tests/firmware tests/crm_bridge || status=1
    exit \$status
"
