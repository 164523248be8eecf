"""Nothing loopwise keeps is readable by another local user: under a permissive umask (022), the home,
the SQLite database with its WAL and shared-memory files, a data set, a model and the captured requests of
a real server are 0700 directories and 0600 files; a home an older loopwise left world-readable is made
private when the store opens."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auth_helpers import admin_token, bearer
from loopwise._private import private_dir
from loopwise.app import background_server
from loopwise.config import Settings
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask (files 0644, directories 0755 unless told otherwise) for the test."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _not_private(home: Path) -> dict[str, str]:
    """Every path under ``home`` (``home`` too) whose mode is not 0700 (directory) or 0600 (file)."""
    wrong = {}
    for path in [home, *home.rglob("*")]:
        mode = path.lstat().st_mode
        expected = 0o700 if stat.S_ISDIR(mode) else 0o600
        if stat.S_IMODE(mode) != expected:
            wrong[str(path.relative_to(home))] = oct(stat.S_IMODE(mode))
    return wrong


def test_the_home_holds_nothing_another_user_can_read(
    store: Store, import_small: Callable[[Store], str]
) -> None:
    import httpx

    home = store.settings.home
    dataset = import_small(store)
    train(store, TrainRequest(dataset=dataset, backend="tfidf", model_name="small-tfidf"), progress=False)
    config = {"variants": [{"name": "VariantA", "model": "small-tfidf:1"}], "capture": {"embeddings": False}}
    create_endpoint(store, "reviews", parse_endpoint_config(config))
    with background_server(store) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
        for number in range(3):
            answer = client.post(
                "/endpoints/reviews/invocations",
                json={"features": [f"a lovely dress, number {number}"]},
                headers=bearer(admin_token(store)),
            )
            assert answer.status_code == 200, answer.text
    # the server wrote its captures as it stopped
    captured = list((home / "artifacts" / "capture").rglob("*.jsonl*"))
    assert captured, "the server captured nothing"
    assert list((home / "artifacts" / "datasets").rglob("*")) and list(
        (home / "artifacts" / "models").rglob("*")
    )
    if store.engine.dialect.name == "sqlite":
        names = {p.name for p in home.iterdir()}
        assert {"loopwise.db", "loopwise.db-wal", "loopwise.db-shm"} <= names, names
    assert _not_private(home) == {}


def test_a_home_left_readable_is_made_private_when_the_store_opens(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store.open(Settings(home=home))
    try:
        (store.artifacts.root / "datasets/old").mkdir(parents=True)
        (store.artifacts.root / "datasets/old/rows.csv").write_text("text,label\n", encoding="utf-8")
    finally:
        store.close()
    for path in [home, *home.rglob("*")]:  # as an older loopwise left it
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert _not_private(home)
    store = Store.open(Settings(home=home))
    try:
        assert _not_private(home) == {}
    finally:
        store.close()


def test_private_dir_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    before = stat.S_IMODE(tmp_path.stat().st_mode)
    os.umask(0o277)  # would take the owner's write bit
    made = private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == before  # a parent that existed is left alone
    (made / "c").mkdir(mode=0o755)
    private_dir(made / "c")  # an existing directory is set to 0700 too
    assert stat.S_IMODE((made / "c").stat().st_mode) == 0o700


def test_loopwise_server_writes_with_umask_077(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the server writes outside the store's own writers (reports, labeling outputs) is private
    too: ``loopwise server`` serves under umask 077 (uvicorn stubbed: the umask it would serve under)."""
    import uvicorn
    from typer.testing import CliRunner

    from loopwise.cli import app

    seen: list[int] = []

    def serve(*args: object, **kwargs: object) -> None:
        current = os.umask(0o022)
        os.umask(current)
        seen.append(current)

    monkeypatch.setenv("LOOPWISE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(uvicorn, "run", serve)
    result = CliRunner().invoke(app, ["server", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert seen == [0o077]
