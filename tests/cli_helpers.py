"""What CLI tests share: running ``loopwise`` in this process (its output and exit status as a child
process's) or as a process, reading its one-line usage error, and reading a child process's first line of
output with a deadline."""

from __future__ import annotations

import contextlib
import io
import os
import selectors
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from loopwise.cli import main
from loopwise.cli._common import console, err_console


@contextlib.contextmanager
def _environment(home: Path, columns: int, database_url: str | None) -> Iterator[None]:
    """LOOPWISE_HOME and LOOPWISE_DATABASE_URL set (unset: SQLite) for the block, and the CLI's consoles
    ``columns`` wide; restored after. rich reads COLUMNS once, when a console is made, so the width is set
    on the consoles themselves (pytest-xdist's workers start with COLUMNS=80)."""
    saved = dict(os.environ)
    os.environ.update({"LOOPWISE_HOME": str(home), "COLUMNS": str(columns)})
    if database_url is None:
        os.environ.pop("LOOPWISE_DATABASE_URL", None)
    else:
        os.environ["LOOPWISE_DATABASE_URL"] = database_url
    widths = [(each, each._width) for each in (console, err_console)]
    for each, _ in widths:
        each.width = columns
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for each, width in widths:
            each._width = width


def _hidden_prompt(prompt: str) -> str:
    """getpass without a terminal: the prompt on stderr, the answer a line of stdin."""
    sys.stderr.write(prompt)
    return sys.stdin.readline().rstrip("\n")


def run(
    home: Path,
    *args: str,
    check: bool = True,
    input: str | None = None,
    columns: int = 200,
    database_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``loopwise ARGS`` with ``home`` as its LOOPWISE_HOME, on ``database_url`` (SQLite without),
    answered as a child process's would be (stdout, stderr, the exit status; an escaped exception's
    traceback on stderr with status 1), but run in this process through the script's own entry point,
    ``loopwise.cli.main``: a process would first spend two seconds importing what this one has imported
    already. ``input`` is its stdin, a password prompt's answer included (read as getpass reads it
    without a terminal). :func:`run_process` runs it as a process, for what only a process shows."""
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO(input or "")
    termui = sys.modules[typer.prompt.__module__]  # click's, or the copy of click a newer typer bundles
    hidden = termui.hidden_prompt_func
    code: int
    with (
        _environment(home, columns, database_url),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        sys.stdin, saved_stdin = stdin, sys.stdin
        termui.hidden_prompt_func = _hidden_prompt
        try:
            main(list(args))
            code = 0
        except SystemExit as stopped:
            code = stopped.code if isinstance(stopped.code, int) else 0 if stopped.code is None else 1
        except Exception:
            err.write(traceback.format_exc())
            code = 1
        finally:
            sys.stdin = saved_stdin
            termui.hidden_prompt_func = hidden
    result = subprocess.CompletedProcess(["loopwise", *args], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"loopwise {' '.join(args)} failed ({code}):\n{result.stderr}")
    return result


def run_process(
    home: Path, *args: str, check: bool = True, input: str | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """``loopwise ARGS`` as a child process with ``home`` as its LOOPWISE_HOME, on SQLite."""
    env = {**os.environ, "LOOPWISE_HOME": str(home), "COLUMNS": str(columns)}
    env.pop("LOOPWISE_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", "from loopwise.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        input=input,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"loopwise {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


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
