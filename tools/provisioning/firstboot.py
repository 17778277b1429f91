"""The first-boot step: its script and units, and how the image's OS is told to run it.

Two ways, detected from the boot partition:

- ``cloud-init`` (Raspberry Pi OS images with ``user-data`` on the boot partition): a ``runcmd``
  entry runs ``firstboot.sh run`` once, with the network up.
- ``systemd`` (images without cloud-init): ``cmdline.txt`` gets ``systemd.run=`` pointing at
  ``firstboot.sh``, which installs and enables ``deskphone-firstboot.service`` in the root file
  system, restores ``cmdline.txt`` and reboots; that unit then runs ``firstboot.sh run``.

Every line added to ``user-data`` ends with ``# deskphone-firstboot``, so the script can remove
exactly what was added.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BOOT_MOUNT = "/boot/firmware"
MARK = "# deskphone-firstboot"
SCRIPT = "deskphone/firstboot.sh"
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE_UNIT = REPO_ROOT / "deploy" / "deskphone.service"


def cmdline_tokens(boot_mount: str = BOOT_MOUNT) -> str:
    return (
        f"systemd.run={boot_mount}/{SCRIPT} systemd.run_success_action=reboot "
        "systemd.unit=kernel-command-line.target"
    )


def _template(name: str, boot_mount: str) -> str:
    text = resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")
    return text.replace("@BOOT_MOUNT@", boot_mount).replace("@CMDLINE_ADDED@", cmdline_tokens(boot_mount))


def script(boot_mount: str = BOOT_MOUNT) -> str:
    return _template("firstboot.sh", boot_mount)


def firstboot_unit(boot_mount: str = BOOT_MOUNT) -> str:
    return _template("deskphone-firstboot.service", boot_mount)


def service_unit() -> str:
    return SERVICE_UNIT.read_text(encoding="utf-8")


def detect(boot_files: list[str]) -> str:
    """``cloud-init`` when the boot partition carries cloud-init's ``user-data``, else ``systemd``."""
    lower = {name.lower() for name in boot_files}
    return "cloud-init" if "user-data" in lower else "systemd"


def add_to_cmdline(cmdline: str, boot_mount: str = BOOT_MOUNT) -> str:
    """cmdline.txt (one line) with our systemd.run= appended once."""
    line = cmdline.strip().splitlines()[0] if cmdline.strip() else ""
    tokens = cmdline_tokens(boot_mount)
    if tokens in line:
        return line + "\n"
    if "systemd.run=" in line:
        raise ValueError("cmdline.txt already runs another systemd.run= first-boot script; remove it first")
    return f"{line} {tokens}\n"


def add_to_user_data(user_data: str, boot_mount: str = BOOT_MOUNT) -> str:
    """cloud-init user-data with a runcmd entry for our script (added to an existing runcmd if any)."""
    item = f"[bash, {boot_mount}/{SCRIPT}, run]"
    lines = [line for line in user_data.splitlines() if not line.endswith(MARK)]
    if not lines or not lines[0].startswith("#cloud-config"):
        lines.insert(0, f"#cloud-config  {MARK}")
    for index, line in enumerate(lines):
        if line.rstrip() == "runcmd:" or line.startswith("runcmd: "):
            if line.strip() != "runcmd:":
                raise ValueError("user-data has an inline runcmd; use a block list so an entry can be added")
            following = next(
                (x for x in lines[index + 1 :] if x.strip() and not x.lstrip().startswith("#")), ""
            )
            indent = (
                following[: len(following) - len(following.lstrip())]
                if following.lstrip().startswith("-")
                else "  "
            )
            lines.insert(index + 1, f"{indent}- {item}  {MARK}")
            break
    else:
        lines += [f"runcmd:  {MARK}", f"  - {item}  {MARK}"]
    return "\n".join(lines) + "\n"
