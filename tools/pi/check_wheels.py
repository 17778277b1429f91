#!/usr/bin/env python3
"""check_wheels.py BUNDLE: is the Raspberry Pi bundle complete and built for the Pi's architecture?

For each Python the bundle serves (3.11: Raspberry Pi OS bookworm, 3.13: trixie):
- every dependency of the deskphone wheel, and theirs, has a wheel whose tags that Python on aarch64
  accepts (markers evaluated for that target, not for this machine);
- every shared object in a platform wheel is AArch64 (readelf), named for its Python, needs only
  the libraries the phone's OS has, and no glibc newer than bookworm's;
- ``auditwheel show`` finds pjsua2 self-contained (no external libraries besides glibc/libstdc++).

Prints one line per wheel and exits 1 listing every problem.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

PYTHONS = ("3.11", "3.13")
GLIBC_MAX = (2, 36)  # bookworm; trixie has 2.41
# What the phone's OS provides to a wheel (Raspberry Pi OS Lite has libasound2).
SYSTEM_LIBS = {
    "libc.so.6",
    "libm.so.6",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "ld-linux-aarch64.so.1",
    "libasound.so.2",
}
MUST_HAVE = ("pjsua2", "pyalsaaudio", "lgpio", "deskphone")


def target_tags(pyver: str) -> set[Tag]:
    major, minor = (int(x) for x in pyver.split("."))
    platforms = [f"manylinux_2_{m}_aarch64" for m in range(GLIBC_MAX[1], 16, -1)]
    platforms += ["manylinux2014_aarch64", "linux_aarch64"]
    return set(cpython_tags((major, minor), platforms=platforms)) | set(
        compatible_tags((major, minor), f"cp{major}{minor}", platforms=platforms)
    )


def target_env(pyver: str) -> dict[str, str]:
    return {
        "python_version": pyver,
        "python_full_version": f"{pyver}.0",
        "platform_machine": "aarch64",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def metadata(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(zf.read(name).decode()).get_all("Requires-Dist") or []


def check_shared_objects(wheel: Path, pyver: str | None, problems: list[str]) -> int:
    count = 0
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not re.search(r"\.so(\.|$)", name):
                continue
            count += 1
            path = Path(zf.extract(name, tmp))
            header = subprocess.run(["readelf", "-h", path], capture_output=True, text=True).stdout
            if "AArch64" not in header:
                problems.append(f"{wheel.name}: {name} is not AArch64")
            dynamic = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
            needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic))
            bundled = {Path(n).name for n in zf.namelist() if ".libs/" in n}
            for lib in sorted(needed - SYSTEM_LIBS - bundled):
                problems.append(f"{wheel.name}: {name} needs {lib}, which the phone does not have")
            versions = subprocess.run(["readelf", "-V", path], capture_output=True, text=True).stdout
            for major, minor in {tuple(map(int, v)) for v in re.findall(r"GLIBC_(\d+)\.(\d+)", versions)}:
                if (major, minor) > GLIBC_MAX:
                    problems.append(f"{wheel.name}: {name} needs GLIBC_{major}.{minor} (bookworm has 2.36)")
            if pyver and name.startswith(("_", "alsaaudio")) and "/" not in name:
                suffix = f".cpython-{pyver.replace('.', '')}-aarch64-linux-gnu.so"
                if not name.endswith(suffix):
                    problems.append(f"{wheel.name}: {name} is not named *{suffix}")
    return count


def auditwheel_policy(wheel: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True
    )
    found = re.search(r'platform tag:\s*"([^"]+)"', proc.stdout.replace("\n", " "))
    return found.group(1) if found else f"unknown ({proc.stderr.strip()[-200:]})"


def check(bundle: Path) -> list[str]:
    problems: list[str] = []
    firmware = sorted(bundle.glob("deskphone-*.whl"))
    wheels = sorted((bundle / "wheelhouse").glob("*.whl")) + firmware
    if len(firmware) != 1:
        return [f"{bundle}: needs exactly one deskphone-*.whl (found {len(firmware)})"]
    by_name: dict[str, list[tuple[Path, frozenset[Tag]]]] = {}
    for wheel in wheels:
        name, _version, _build, tags = parse_wheel_filename(wheel.name)
        by_name.setdefault(canonicalize_name(name), []).append((wheel, tags))
    for pyver in PYTHONS:
        accepted = target_tags(pyver)
        env = target_env(pyver)
        usable = {name: [w for w, tags in items if tags & accepted] for name, items in by_name.items()}
        for must in MUST_HAVE:
            if not usable.get(must):
                problems.append(f"python {pyver}: no {must} wheel for aarch64")
        todo, seen = [firmware[0]], set()
        while todo:
            wheel = todo.pop()
            if wheel in seen:
                continue
            seen.add(wheel)
            for text in metadata(wheel):
                req = Requirement(text)
                if req.marker is not None and not Marker(str(req.marker)).evaluate(env):
                    continue
                candidates = [
                    w
                    for w in usable.get(canonicalize_name(req.name), [])
                    if req.specifier.contains(parse_wheel_filename(w.name)[1], prereleases=True)
                ]
                if not candidates:
                    problems.append(f"python {pyver}: {wheel.name} needs {req}, no wheel in the bundle")
                todo += candidates
    for wheel in wheels:
        _name, _version, _build, tags = parse_wheel_filename(wheel.name)
        platform_tags = {t for t in tags if t.platform != "any"}
        pyver = None
        if platform_tags:
            if not all(t.platform.endswith("_aarch64") for t in platform_tags):
                problems.append(f"{wheel.name}: not an aarch64 wheel")
            interpreters = {t.interpreter for t in platform_tags}
            pyver = next(iter(interpreters))[2:3] + "." + next(iter(interpreters))[3:]
            if pyver not in PYTHONS:
                problems.append(f"{wheel.name}: for Python {pyver}, the bundle serves {', '.join(PYTHONS)}")
        objects = check_shared_objects(wheel, pyver, problems)
        if platform_tags and not objects:
            problems.append(f"{wheel.name}: a platform wheel without a shared object")
        note = ""
        if wheel.name.startswith("pjsua2-"):
            policy = auditwheel_policy(wheel)
            note = f", auditwheel: {policy}"
            if not policy.startswith("manylinux_"):
                problems.append(f"{wheel.name}: auditwheel finds it not self-contained ({policy})")
        print(f"  {wheel.name}: {wheel.stat().st_size >> 10} KiB, {objects} shared objects{note}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    problems = check(Path(argv[0]))
    for problem in problems:
        print(f"check_wheels: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
