"""The installer's whole path on the phone's architecture, under QEMU, with the real peers.

An arm64 Debian root stands in for the card's root file system. ``tools/flash.py provision`` writes
a Raspberry Pi OS-shaped image from the Pi bundle; its boot partition is laid into the root; the
first-boot script runs there without any network but its own loopback and installs the phone; then
the installed unit's command runs in the root on the sim board: it registers at the host's kamailio
(digest auth), calls baresip with audio both ways, and its call.ended reaches the host's mosquitto.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from lab.servers.audio import dominant_frequency, read_wav, rms_dbfs, write_sine_wav
from lab.servers.phone import PhoneProcess
from lab.servers.ports import LOOPBACK, free_port
from tests.e2e.crm_support import DEVICE, CrmView, call_events
from tests.e2e.test_plain_extension import listen, tone_in
from tests.tools.conftest import FLASH, extract_boot, make_release_image
from tools.provisioning.tomlwriter import dumps

from .conftest import RELEASES, inroot

pytestmark = pytest.mark.e2e

SIP_PASSWORD = "a64-sip-Secret-9"


def pi_image(path: Path, root: Path) -> Path:
    """A Raspberry Pi OS-shaped image whose root partition says it is the release of ``root``."""
    return make_release_image(path, (root / "usr/lib/os-release").read_text())


def flash(*args: str) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, str(FLASH), *args], capture_output=True, text=True, timeout=300)


def service_command(root: Path) -> tuple[list[str], str, list[str]]:
    """ExecStart, User and SupplementaryGroups of the deskphone.service the first boot installed."""
    unit = (root / "etc/systemd/system/deskphone.service").read_text()
    values = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    groups = values.get("SupplementaryGroups", "").split()
    return shlex.split(values["ExecStart"]), values["User"], groups


def for_shared_loopback(root: Path, mic_file: str) -> None:
    """The installed config, with the ports and address a shared test machine needs."""
    path = root / "etc/deskphone/deskphone.toml"
    config = tomllib.loads(path.read_text())
    config["sip"].update(local_port=free_port(), bind_address=LOOPBACK, media_port=free_port())
    config.setdefault("sim", {})["mic_file"] = mic_file
    config.setdefault("log", {})["level"] = "DEBUG"
    path.write_text(dumps(config, header="first-boot test: ports and address for a shared loopback"))


@pytest.mark.parametrize("release", RELEASES)
def test_first_boot_offline_then_register_call_and_report(  # type: ignore[no-untyped-def]
    release, tmp_path, pi_bundle, pi_root, kamailio, baresip_factory, mosquitto
):
    root = pi_root(release)
    assert not (root / "usr/bin/gcc").exists() and not (root / "usr/bin/cc").exists(), (
        "a compiler in the root"
    )

    # The installer's side: one card, checked.
    image = pi_image(tmp_path / "card.img", root)
    password_file = tmp_path / "sip-password"
    password_file.write_text(SIP_PASSWORD)
    provision = flash(
        "provision", "--target", str(image), "--bundle", str(pi_bundle), "--board", "sim",
        "--device-id", DEVICE, "--extension", "1001", "--sip-password-file", str(password_file),
        "--secrets", str(tmp_path / "secrets.csv"),
        "--registrar", f"{kamailio.host}:{kamailio.port}", "--trusted-pbx", LOOPBACK,
        "--broker-host", mosquitto.host, "--broker-port", str(mosquitto.port),
    )  # fmt: skip
    assert provision.returncode == 0, provision.stdout + provision.stderr
    assert f"wheels for {release}" in provision.stdout
    verify = flash("verify", "--target", str(image))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"Raspberry Pi OS {release}" in verify.stdout

    # Only the wheels of this release's Python went onto the card.
    boot_copy = extract_boot(image, tmp_path / "extracted")
    image.unlink()
    wheels = sorted(p.name for p in (boot_copy / "deskphone/bundle/wheelhouse").iterdir())
    python = {"bookworm": "cp311", "trixie": "cp313"}[release]
    assert any(w.startswith("pjsua2-") and f"-{python}-" in w for w in wheels), wheels
    assert not [w for w in wheels if "-cp3" in w and f"-{python}-" not in w], wheels

    # The card in the phone: its boot partition mounted at /boot/firmware, first boot offline.
    boot = root / "boot/firmware"
    boot.mkdir(parents=True, exist_ok=True)
    shutil.copytree(boot_copy, boot, dirs_exist_ok=True)
    shutil.rmtree(boot_copy.parent)
    script = boot / "deskphone/firstboot.sh"
    enable = inroot(root, "/bin/bash", "/boot/firmware/deskphone/firstboot.sh", "enable", offline=True)
    assert enable.returncode == 0, enable.stderr
    assert (root / "etc/systemd/system/deskphone-firstboot.service").exists()
    run = inroot(root, "/bin/bash", "/boot/firmware/deskphone/firstboot.sh", "run", offline=True)
    log = (root / "var/log/deskphone-firstboot.log").read_text()
    assert run.returncode == 0, run.stderr[-3000:]
    assert "firmware installed in /opt/deskphone/venv" in log and "FAILED" not in log
    assert SIP_PASSWORD not in log + run.stdout + run.stderr
    assert not script.exists() and not (boot / "deskphone").exists()
    installed = {
        p.name.split("-")[0].lower()
        for p in (root / "opt/deskphone/venv/lib").glob("python3*/site-packages/*.dist-info")
    }
    assert {"deskphone", "pjsua2", "pyalsaaudio", "gpiozero", "paho_mqtt"} <= installed, installed
    # pip byte-compiled what it installed: the service's user cannot write the venv, so a module
    # without its .pyc would be compiled again at every start (~150 ms before the REGISTER here).
    site = next((root / "opt/deskphone/venv/lib").glob("python3*/site-packages"))
    tag = {"bookworm": "cpython-311", "trixie": "cpython-313"}[release]
    sources = [site / "pjsua2.py"] + [
        p
        for package in ("firmware", "sip_stack", "board", "configschema")
        for p in (site / package).rglob("*.py")
    ]
    uncompiled = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").exists()]
    assert len(sources) > 40 and not uncompiled, uncompiled

    # The installed service, as systemd would start it, on the host's loopback peers.
    argv, user, groups = service_command(root)
    assert argv[0] == "/opt/deskphone/venv/bin/deskphone" and user == "deskphone"
    write_sine_wav(
        root / "var/lib/deskphone/mic1k.wav", freq=1000.0, seconds=120.0, rate=16000, amplitude=0.3
    )
    os.chown(root / "var/lib/deskphone/mic1k.wav", *_ids(root, user))
    for_shared_loopback(root, "/var/lib/deskphone/mic1k.wav")
    kamailio.add_user("1001", SIP_PASSWORD)
    far = baresip_factory("1002", auto_answer=True)  # plays 440 Hz
    crm = CrmView(mosquitto)
    command = [str(Path(__file__).parents[2] / "tools/pi/inroot.sh"), str(root), "setpriv",
               f"--reuid={user}", f"--regid={user}", f"--groups={','.join(groups)}", *argv]  # fmt: skip
    phone = PhoneProcess(root / "var/lib/deskphone", "", 0, argv=command)
    try:
        phone.start(timeout=180)
        phone.wait_for(lambda s: s["registered"], timeout=120, what="registration")
        phone.client.hook(True)
        phone.wait_mode("dialing", timeout=60)
        phone.client.keys("1002#")
        far.wait_for_event("CALL_ESTABLISHED", timeout=60)
        phone.wait_mode("in_call", timeout=60)
        assert tone_in(listen(phone, 2.0, timeout=60), 440.0), (
            "the far end's 440 Hz did not reach the earpiece"
        )
        phone.client.hook(False)
        far.wait_for_event("CALL_CLOSED", timeout=60)
        events = crm.wait_events(
            lambda evs: any(e["type"] == "call.ended" for e in evs), timeout=120, what="call.ended"
        )
        ended = next(e for e in call_events(events) if e["type"] == "call.ended")
        assert ended["call"]["disposition"] == "answered" and ended["call"]["remote"]["number"] == "1002"
        sent = far.recorded_wav_path("dec")
        assert sent is not None
        samples, rate = read_wav(sent)
        assert abs(dominant_frequency(samples[-rate * 2 :], rate) - 1000.0) < 15, (
            "our microphone did not arrive"
        )
        assert rms_dbfs(samples[-rate * 2 :]) > -30
    finally:
        crm.close()
        phone.stop(timeout=60)


def _ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"no user {user} in the root")
