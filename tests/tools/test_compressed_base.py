"""A compressed base image with a bundle for several Pythons: the release is read from the written
image, and the image still gets its real name only once it is complete."""

from __future__ import annotations

import lzma
import stat
from pathlib import Path

import pytest

from tools.provisioning.device import Device, Site
from tools.provisioning.errors import WriteFailed
from tools.provisioning.provision import provision

from .conftest import extract_boot, make_release_image, require_config_schema

TRIXIE = 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\nID=debian\n'


@pytest.fixture(scope="module")
def trixie_xz(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    image = make_release_image(tmp_path_factory.mktemp("trixie") / "raspios.img", TRIXIE)
    data = lzma.compress(image.read_bytes(), preset=0)
    image.unlink()
    return data


@pytest.fixture
def pi_bundle(bundle: Path) -> Path:
    """The placeholder bundle with compiled wheels for bookworm's and trixie's Pythons."""
    for python in ("cp311", "cp313"):
        wheel = bundle / "wheelhouse" / f"pjsua2-2.15.1-{python}-{python}-linux_aarch64.whl"
        wheel.write_bytes(f"PK\x03\x04 pjsua2 for {python}\n".encode() * 50)
    return bundle


def _provision(target: Path, base: Path, bundle: Path, site: Site, echo=print) -> object:  # type: ignore[no-untyped-def]
    device = Device(device_id="desk-1", extension="101", sip_password="s3cret-one-two", mqtt_password="m")
    return provision(target, device, site, bundle, base=base, echo=echo)


def test_the_release_of_a_compressed_base_is_read_from_the_image_written_under_a_temporary_name(
    tmp_path: Path, trixie_xz: bytes, pi_bundle: Path, site: Site
) -> None:
    require_config_schema()
    base = tmp_path / "raspios.img.xz"
    base.write_bytes(trixie_xz)
    target = tmp_path / "images" / "desk-1.img"
    target.parent.mkdir()
    partial = target.with_name(".desk-1.img.partial")
    seen: list[tuple[bool, bool]] = []

    def echo(line: str) -> None:
        if line.strip().startswith("writing"):
            seen.append((target.exists(), partial.exists()))

    result = _provision(target, base, pi_bundle, site, echo)
    assert seen and all(state == (False, True) for state in seen), seen  # mid-way: only the partial
    assert result.release == "trixie"  # type: ignore[attr-defined]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and not partial.exists()
    wheels = sorted(
        p.name for p in (extract_boot(target, tmp_path / "x") / "deskphone/bundle/wheelhouse").iterdir()
    )
    assert "pjsua2-2.15.1-cp313-cp313-linux_aarch64.whl" in wheels
    assert not [w for w in wheels if "cp311" in w], wheels


def test_a_crash_or_a_bad_compressed_base_leaves_no_image_under_its_name(
    tmp_path: Path, trixie_xz: bytes, pi_bundle: Path, site: Site
) -> None:
    require_config_schema()
    target = tmp_path / "desk-1.img"
    partial = target.with_name(".desk-1.img.partial")

    # Interrupted while the base is being written (Ctrl-C; a SIGKILL would leave only the partial).
    base = tmp_path / "raspios.img.xz"
    base.write_bytes(trixie_xz)

    def interrupt(line: str) -> None:
        if line.strip().startswith("writing"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _provision(target, base, pi_bundle, site, interrupt)
    assert not target.exists() and not partial.exists()

    # A truncated download: its boot partition reads fine, the rest fails to decompress.
    base.write_bytes(trixie_xz[:-64])
    with pytest.raises(WriteFailed, match="not written, the partial image was removed"):
        _provision(target, base, pi_bundle, site)
    assert not target.exists() and not partial.exists()
