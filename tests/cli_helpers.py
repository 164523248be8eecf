"""What CLI tests share: running ``loopwise`` in this process and reading its one-line usage error."""

from __future__ import annotations

import pytest

from loopwise.cli import main


def usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one line that ``loopwise ARGS`` prints as a usage error, after checking it exits 2 with that
    line alone on stderr and nothing on stdout."""
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    captured = capsys.readouterr()
    assert stopped.value.code == 2, f"loopwise {' '.join(args)} exited {stopped.value.code}: {captured}"
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, f"loopwise {' '.join(args)} printed {len(lines)} lines:\n{captured.err}"
    assert "Traceback" not in captured.err and not captured.out
    return lines[0]
