"""The lock file: every requirement of pyproject.toml (its extras included) is pinned in requirements.lock
to a version its range admits, with hashes; `make lock` refreshes it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
#: the platform the lock is compiled for (make lock: --python-version 3.11, x86_64 manylinux)
ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def _pins() -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, number of hashes)."""
    pins: dict[str, tuple[Version, int]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", entry)
        if match:
            pins[canonicalize_name(match[1])] = (Version(match[2]), entry.count("--hash=sha256:"))
    return pins


#: extras for other hardware, never installed on the CPU machines the lock is compiled for: ``gpu``
#: (onnxruntime-gpu) replaces the locked CPU onnxruntime wheel, so it cannot be locked beside it
UNLOCKED_EXTRAS = {"gpu"}


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for name, extra in project.get("optional-dependencies", {}).items():
        if name not in UNLOCKED_EXTRAS:
            listed.extend(extra)
    return [Requirement(r) for r in listed]


def test_every_requirement_is_pinned_within_its_range_with_hashes() -> None:
    pins = _pins()
    assert len(pins) > 50
    problems = []
    for requirement in _requirements():
        if requirement.marker is not None and not requirement.marker.evaluate(ENVIRONMENT):
            continue
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement} is not in requirements.lock")
            continue
        pinned, hashes = pins[name]
        if not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement} but requirements.lock pins {pinned}")
        if hashes == 0:
            problems.append(f"{name} has no hash in requirements.lock")
    assert not problems, "pyproject.toml and requirements.lock disagree (run `make lock`):\n" + "\n".join(
        problems
    )


def test_every_pin_has_a_hash_and_torch_is_the_cpu_build() -> None:
    pins = _pins()
    assert all(hashes > 0 for _, hashes in pins.values())
    assert pins["torch"][0].local == "cpu"
    header = LOCK.read_text().splitlines()[:3]
    assert any("make lock" in line for line in header)
