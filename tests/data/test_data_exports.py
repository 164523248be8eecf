"""The public surface of ``loopwise.data``: every exported name resolves, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import loopwise.data


def test_every_exported_name_resolves() -> None:
    assert len(set(loopwise.data.__all__)) == len(loopwise.data.__all__)
    for name in loopwise.data.__all__:
        assert getattr(loopwise.data, name) is not None, name
    assert sorted(loopwise.data.__all__) == dir(loopwise.data)


def test_importing_the_package_loads_no_heavy_libraries() -> None:
    heavy = "{'torch', 'pandas', 'pyarrow', 'sklearn'}"
    code = f"import sys, loopwise.data; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
