"""Usage errors: one line naming the problem (and the closest option), exit status 2, for every command;
and every command that the README, the docs, a page or an error message suggests parses as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
from test_cli import COMMANDS

from cli_helpers import run, usage_error
from loopwise.cli import app, click_exceptions

ROOT = Path(__file__).resolve().parents[2]
ROOT_COMMAND: Any = typer.main.get_command(app)


def _command(path: tuple[str, ...]) -> Any:
    command = ROOT_COMMAND
    for part in path:
        command = command.commands[part]
    return command


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPWISE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOOPWISE_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "300")


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "loopwise")
def test_an_unknown_option_is_one_line_naming_the_closest_option(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    line = usage_error(capsys, *path, "--definitely-not-an-option")
    assert line.startswith("error: no such option --definitely-not-an-option")
    assert "the closest option is --" in line or "takes no options" in line
    assert f"'loopwise {' '.join(path)} --help'".replace("  ", " ") in line


REQUIRED = [p for p in COMMANDS if any(param.required for param in _command(p).params)]


@pytest.mark.parametrize("path", REQUIRED, ids=lambda p: " ".join(p))
def test_a_missing_argument_is_one_line_naming_it(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    line = usage_error(capsys, *path)
    first = next(param for param in _command(path).params if param.required)
    assert line.startswith("error: Missing ")
    assert (first.name or "").lower() in line.lower().replace("-", "_")


def test_a_mistyped_option_names_the_intended_one(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, "train", "--model-name", "x")
    assert "--model-name" in line and "--model" in line.split("closest option is", 1)[1]
    line = usage_error(capsys, "train", "--epochs", "many")
    assert "--epochs" in line
    assert len(REQUIRED) > 20  # the walk above really covers the commands with arguments


def test_usage_errors_from_a_process_are_one_line_with_status_2(tmp_path: Path) -> None:
    result = run(tmp_path / "home", "train", "--model-name", "x", check=False)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "--model" in result.stderr


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run(tmp_path / "home", "--version")
    assert result.stdout.strip() == f"loopwise {version('loopwise')}"


# --- every command that something shown to people suggests -------------------------------------------

_SOURCES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "src" / "loopwise").rglob("*.py")),
    *sorted((ROOT / "src" / "loopwise").rglob("*.html")),
]
_QUOTED = re.compile(r"(?:`|<code>)(loopwise [^`<\n]+?)(?:`|</code>)")


def _suggestions() -> list[tuple[str, str]]:
    """(where, command) for every command quoted in backticks or <code> in the README, the docs, the
    pages and the package's messages, and every line of the README's shell blocks."""
    found: dict[str, str] = {}
    for source in _SOURCES:
        text = source.read_text()
        where = str(source.relative_to(ROOT))
        for quoted in _QUOTED.findall(text):
            found.setdefault(quoted.strip(), where)
        if source.suffix == ".md":
            for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, flags=re.S):
                for line in block.splitlines():
                    line = line.split("#", 1)[0].strip()
                    if line.startswith("loopwise "):
                        found.setdefault(line, where)
    return sorted((where, command) for command, where in found.items())


def _as_written(command: str) -> list[str]:
    """The words of a suggested command: f-string fields and placeholders (``{job.name}``, ``ID``,
    ``NAME``) become a value that any type takes, optional ``[...]`` parts are kept (without the
    brackets), an ellipsis is dropped."""
    command = re.sub(r"\{[^}]*\}", "1", command)
    command = command.replace("[", " ").replace("]", " ").replace("...", " ").replace("…", " ")
    return [re.sub(r"^[A-Z][A-Z_]*$", "1", word) for word in shlex.split(command)[1:]]


SUGGESTED = _suggestions()


def _rest(context: Any) -> list[str]:
    """The words a group left for its sub-command (click 8.2 keeps the command's name apart)."""
    return [*getattr(context, "_protected_args", getattr(context, "protected_args", [])), *context.args]


def test_the_suggestions_were_found() -> None:
    commands = [c for _, c in SUGGESTED]
    assert len(commands) > 40
    assert "loopwise workforce admin you@example.com" in commands  # the sign-in page's advice


@pytest.mark.parametrize(("where", "command"), SUGGESTED, ids=[c for _, c in SUGGESTED])
def test_every_suggested_command_parses_as_written(where: str, command: str) -> None:
    """Parsed as the user would type it (commands, options, values); a mention that leaves out a
    required argument is a reference to the command, not a wrong command, and passes."""
    args = _as_written(command)
    errors = click_exceptions()
    context: Any = None
    group: Any = ROOT_COMMAND
    try:
        context = group.make_context("loopwise", list(args))
        while hasattr(context.command, "commands") and _rest(context):
            rest = _rest(context)
            name, sub, rest = context.command.resolve_command(context, rest)
            context = sub.make_context(name, rest, parent=context)
    except errors.MissingParameter:
        pass  # a mention of the command
    except typer.Exit:
        pass  # --help, --version
    except errors.UsageError as exc:
        pytest.fail(f"{where} suggests `{command}`, which fails: {exc.format_message()}")


def test_the_sign_in_page_advice_runs_as_written(tmp_path: Path) -> None:
    page = (ROOT / "src" / "loopwise" / "web" / "templates" / "signin.html").read_text()
    advice = next(c for c in _QUOTED.findall(page) if "admin" in c)
    password = "correct-horse-battery-9"
    result = run(tmp_path / "home", *_as_written(advice), input=f"{password}\n{password}\n")
    assert "you@example.com" in result.stdout + result.stderr
