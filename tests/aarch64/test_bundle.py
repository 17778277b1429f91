"""The Raspberry Pi bundle from make dist-pi: its wheels' tags, architectures and contents."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import REPO

CHECK = REPO / "tools" / "pi" / "check_wheels.py"


def check(bundle: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), str(bundle)], capture_output=True, text=True, timeout=300
    )


def test_the_bundle_passes_its_checks(pi_bundle: Path) -> None:
    proc = check(pi_bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "auditwheel: manylinux_" in proc.stdout  # pjsua2 is self-contained
    sums = subprocess.run(
        ["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=pi_bundle, capture_output=True
    )
    assert sums.returncode == 0, sums.stdout


def test_pjsua2_for_both_pythons_with_openssl_inside(pi_bundle: Path, tmp_path: Path) -> None:
    wheelhouse = pi_bundle / "wheelhouse"
    for python in ("311", "313"):
        (wheel,) = wheelhouse.glob(f"pjsua2-2.15.1-cp{python}-cp{python}-*aarch64.whl")
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            module = f"_pjsua2.cpython-{python}-aarch64-linux-gnu.so"
            assert module in names and "pjsua2.py" in names
            so = Path(zf.extract(module, tmp_path / python))
        header = subprocess.run(["readelf", "-h", so], capture_output=True, text=True, check=True).stdout
        assert "AArch64" in header
        # OpenSSL is linked in, not needed from the OS. The module exports only its own few symbols
        # (tools/pjsua2/exports.map), so OpenSSL shows by its version text and its source file names.
        data = so.read_bytes()
        assert re.search(rb"OpenSSL 3\.\d+\.\d+ ", data) and b"ssl/ssl_lib.c" in data
        dynamic = subprocess.run(["readelf", "-d", so], capture_output=True, text=True, check=True).stdout
        assert "libssl" not in dynamic and "libcrypto" not in dynamic
        (alsa,) = wheelhouse.glob(f"pyalsaaudio-*-cp{python}-cp{python}-*aarch64.whl")
        assert alsa.stat().st_size > 10_000


def test_the_check_refuses_a_wheel_for_the_wrong_machine_and_a_missing_dependency(
    pi_bundle: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bundle"
    shutil.copytree(pi_bundle, bad)
    (alsa311,) = (bad / "wheelhouse").glob("pyalsaaudio-*-cp311-*.whl")
    # An x86_64 shared object in an aarch64-tagged wheel, and no pyalsaaudio for 3.13.
    with zipfile.ZipFile(alsa311, "a") as zf:
        zf.write(_host_so(), "stray.so")
    for wheel in (bad / "wheelhouse").glob("pyalsaaudio-*-cp313-*.whl"):
        wheel.unlink()
    proc = check(bad)
    assert proc.returncode == 1
    assert "stray.so is not AArch64" in proc.stderr
    assert "python 3.13: no pyalsaaudio wheel for aarch64" in proc.stderr


def _host_so() -> str:
    import _ctypes

    return _ctypes.__file__
