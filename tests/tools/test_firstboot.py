"""The generated first-boot script, run against a scratch root: users, files, modes, units, traces."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tools.provisioning import firstboot
from tools.provisioning.device import Device, Site
from tools.provisioning.provision import MANIFEST, stage

from .conftest import CMDLINE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown to the service user needs root")


def _scratch_root(tmp_path: Path, site: Site, bundle: Path) -> tuple[Path, Path]:
    # The first boot runs pip from the bundle's own pip wheel (the image needs no python3-venv).
    (bundle / "wheelhouse" / "pip-24.0-py3-none-any.whl").write_bytes(b"PK\x03\x04 pip\n" * 50)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    # A Raspberry Pi OS-like account database (audio exists, gpio exists).
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\naudio:x:29:pi\ngpio:x:997:pi\npi:x:1000:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\npi:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\naudio:*::pi\ngpio:!::pi\npi:!::\n")
    boot = root / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "cmdline.txt").write_text(CMDLINE.strip() + " " + firstboot.cmdline_tokens() + "\n")
    device = Device("desk-7", "107", sip_password="sip-secret-7", mqtt_password="mqtt-secret-7")
    stage(device, site, bundle, boot, firstboot.BOOT_MOUNT)
    (boot / MANIFEST).unlink()
    return root, boot


def _run(script: Path, root: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DESKPHONE_ROOT": str(root), "DESKPHONE_SKIP_INSTALL": "1"}
    return subprocess.run(["bash", str(script), mode], env=env, capture_output=True, text=True, timeout=60)


def test_enable_then_run_installs_and_cleans_up(tmp_path: Path, site: Site, bundle: Path) -> None:
    root, boot = _scratch_root(tmp_path, site, bundle)
    script = tmp_path / "firstboot.sh"  # a copy: the one on the boot partition removes itself
    script.write_text((boot / "deskphone/firstboot.sh").read_text())

    # Stage 1, from the kernel command line: enable the first-boot unit, restore cmdline.txt.
    proc = _run(script, root, "enable")
    assert proc.returncode == 0, proc.stderr
    unit = root / "etc/systemd/system/deskphone-firstboot.service"
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert unit.read_text() == (boot / "deskphone/deskphone-firstboot.service").read_text()
    assert (
        os.readlink(wants / "deskphone-firstboot.service")
        == "/etc/systemd/system/deskphone-firstboot.service"
    )
    assert (boot / "cmdline.txt").read_text() == CMDLINE

    # Stage 2, from that unit.
    proc = _run(script, root, "run")
    assert proc.returncode == 0, proc.stderr

    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    user = passwd["deskphone"]
    uid, gid = int(user[2]), int(user[3])
    assert uid < 1000 and user[5] == "/var/lib/deskphone" and user[6] == "/usr/sbin/nologin"
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",")
        for line in (root / "etc/group").read_text().splitlines()
    }
    assert "deskphone" in groups["audio"] and "deskphone" in groups["gpio"]

    etc = root / "etc/deskphone"
    secrets = etc / "secrets.toml"
    config = etc / "deskphone.toml"
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert (secrets.stat().st_uid, secrets.stat().st_gid) == (uid, gid)
    assert 'password = "sip-secret-7"' in secrets.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert (config.stat().st_uid, config.stat().st_gid) == (0, gid)
    assert "sip-secret-7" not in config.read_text()
    state = root / "var/lib/deskphone"
    assert state.stat().st_uid == uid and (state / ".provisioned").exists()

    service = root / "etc/systemd/system/deskphone.service"
    assert "WatchdogSec=30" in service.read_text().splitlines()
    assert os.readlink(wants / "deskphone.service") == "/etc/systemd/system/deskphone.service"

    # The commands it would run to install the firmware.
    log = (root / "var/log/deskphone-firstboot.log").read_text()
    assert "run: python3 -m venv --without-pip " + str(root) + "/opt/deskphone/venv" in log
    assert f"pip install --quiet --no-index --find-links {boot}/deskphone/bundle/wheelhouse" in log
    assert "apt-get" not in log  # offline: nothing from the distribution's archive
    assert "deskphone-0.1.0-py3-none-any.whl" in log
    assert "systemctl" not in log  # a scratch root never touches the running system
    assert "sip-secret-7" not in log + proc.stderr

    # Traces removed: the first-boot unit, its symlink, the boot partition's directory and hook.
    assert not unit.exists() and not (wants / "deskphone-firstboot.service").is_symlink()
    assert not (boot / "deskphone").exists()
    assert (boot / "cmdline.txt").read_text() == CMDLINE

    # Running it again finds nothing to do and says so.
    again = _run(script, root, "run")
    assert again.returncode == 1 and "nothing to install" in again.stderr


def test_bad_bundle_checksum_stops_before_installing(tmp_path: Path, site: Site, bundle: Path) -> None:
    root, boot = _scratch_root(tmp_path, site, bundle)
    (boot / "deskphone/bundle/deskphone-0.1.0-py3-none-any.whl").write_bytes(b"corrupted")
    proc = _run(boot / "deskphone/firstboot.sh", root, "run")
    assert proc.returncode == 1 and "checksums do not match" in proc.stderr
    assert "deskphone" not in (root / "etc/passwd").read_text()
    assert (boot / "deskphone/secrets.toml").exists()  # kept for a retry after reflashing the bundle


def test_cloud_init_entry_is_removed(tmp_path: Path, site: Site, bundle: Path) -> None:
    root, boot = _scratch_root(tmp_path, site, bundle)
    original = "#cloud-config\nruncmd:\n  - [echo, hi]\n"
    (boot / "user-data").write_text(firstboot.add_to_user_data(original))
    assert "firstboot.sh, run]" in (boot / "user-data").read_text()
    proc = _run(boot / "deskphone/firstboot.sh", root, "run")
    assert proc.returncode == 0, proc.stderr
    assert (boot / "user-data").read_text() == original
