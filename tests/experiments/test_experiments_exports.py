"""The public surface of ``loopwise.experiments``: every exported name resolves, importing it stays cheap,
and nothing in it imports serving."""

from __future__ import annotations

import subprocess
import sys

import loopwise.experiments


def test_every_exported_name_resolves() -> None:
    assert len(set(loopwise.experiments.__all__)) == len(loopwise.experiments.__all__)
    for name in loopwise.experiments.__all__:
        assert getattr(loopwise.experiments, name) is not None, name
    assert sorted(loopwise.experiments.__all__) == dir(loopwise.experiments)


def test_the_bandit_loads_without_numpy_or_scipy_and_no_module_loads_serving() -> None:
    code = (
        "import sys, loopwise.experiments.bandit; "
        "print(sorted({'numpy', 'scipy'} & set(sys.modules))); "
        "import loopwise.experiments.decisions, loopwise.experiments.ratio, loopwise.experiments.sequential; "
        "print(sorted(m for m in sys.modules if m.startswith('loopwise.serving')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["[]", "[]"]
