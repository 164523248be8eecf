"""What CLI tests share: running ``loopwise`` in this process and reading its one-line usage error;
reading a child process's first line of output with a deadline."""

from __future__ import annotations

import selectors
import subprocess

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


def first_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    """The process's first line of output (text mode, stdout piped); fails after ``timeout_s`` seconds
    of silence or when it exits without a line."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout_s), f"no output within {timeout_s} s"
    line = process.stdout.readline()
    assert line.strip(), f"the process exited ({process.poll()}) without a line of output"
    return line
