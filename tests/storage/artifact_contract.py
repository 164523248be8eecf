"""The contract every :class:`~loopwise.storage.artifacts.ArtifactStore` keeps.

A test module subclasses :class:`ArtifactStoreContract` and overrides the ``store`` fixture (a fresh, empty
store). Every test below then runs against it. ``moto_s3`` starts moto's S3-compatible server on a free
port of 127.0.0.1 once per session (the real HTTP protocol, through s3fs and botocore), and
``s3_settings`` gives settings whose artifacts live in a fresh bucket of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopwise.config import Settings
from loopwise.errors import ChecksumError, NotFoundError
from loopwise.storage.artifacts import MARKER, ArtifactStore, LocalArtifactStore

FILES = {"classifier.json": b'{"backend": "tfidf"}', "weights/part-0.bin": bytes(range(256)) * 8}


def stage(store: ArtifactStore, files: dict[str, bytes] = FILES) -> Path:
    """A staged artifact holding ``files``."""
    staged = store.staging()
    for name, data in files.items():
        (staged / name).parent.mkdir(parents=True, exist_ok=True)
        (staged / name).write_bytes(data)
    return staged


def read_tree(root: Path) -> dict[str, bytes]:
    """The files under ``root`` (the commit marker excluded), by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".loopwise-")
    }


class Crash(BaseException):
    """The process dying at a chosen point of a commit."""


class ArtifactStoreContract:
    @pytest.fixture
    def store(self) -> ArtifactStore:
        raise NotImplementedError

    def test_an_artifact_reads_back_as_committed(self, store: ArtifactStore) -> None:
        uri = store.commit_dir(stage(store), "models/run-1")
        assert uri == store.uri("models/run-1") and store.exists("models/run-1")
        assert read_tree(store.local("models/run-1")) == FILES
        manifest = store.manifest("models/run-1")
        assert set(manifest.files) == set(FILES) and manifest.size == sum(len(d) for d in FILES.values())
        assert store.read_bytes("models/run-1", "weights/part-0.bin") == FILES["weights/part-0.bin"]
        # a URI recorded in the database reads back: the artifact's and a file's in it
        file_uri = store.uri("models/run-1", "classifier.json")
        assert store.locate(file_uri) == ("models/run-1", "classifier.json")
        assert store.local_file(file_uri).read_bytes() == FILES["classifier.json"]
        assert store.read_uri(file_uri) == FILES["classifier.json"]
        assert read_tree(store.local_file(uri)) == FILES
        one = store.put_bytes("review/flow/loop-1", "output.json", b"{}")
        assert store.read_uri(one) == b"{}" and store.locate(one) == ("review/flow/loop-1", "output.json")
        with pytest.raises(NotFoundError):
            store.local("models/run-2")
        with pytest.raises(NotFoundError):
            store.read_bytes("models/run-1", "absent.txt")
        for bad in ("", "/abs", "../out", "a/../../b", "a/.loopwise-artifact.json"):
            with pytest.raises(ValueError):
                store.uri(bad)

    def test_a_crash_before_the_commit_completes_leaves_no_artifact(
        self, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def crash(*args: Any) -> None:
            raise Crash

        monkeypatch.setattr(store, "_publish", crash)
        with pytest.raises(Crash):
            store.commit_dir(stage(store), "datasets/abc")
        assert not store.exists("datasets/abc") and store.list() == []
        with pytest.raises(NotFoundError):
            store.local("datasets/abc")
        with pytest.raises(NotFoundError):
            store.local_file(store.uri("datasets/abc", "classifier.json"))
        with pytest.raises(Crash), store.writing("reports/r") as folder:
            (folder / "report.json").write_text("{}")
        assert not store.exists("reports/r")
        monkeypatch.undo()
        store.commit_dir(stage(store), "datasets/abc")  # the next commit of the key completes it
        assert read_tree(store.local("datasets/abc")) == FILES

    def test_a_key_commits_once_unless_replaced(self, store: ArtifactStore) -> None:
        first = store.commit_dir(stage(store), "datasets/h1")
        again = stage(store, {"other.txt": b"other"})
        assert store.commit_dir(again, "datasets/h1") == first
        assert not again.exists()  # the staged copy is dropped, the artifact kept
        assert read_tree(store.local("datasets/h1")) == FILES
        store.commit_dir(stage(store, {"other.txt": b"new"}), "datasets/h1", replace=True)
        assert store.read_bytes("datasets/h1", "other.txt") == b"new"
        assert set(store.manifest("datasets/h1").files) == {"other.txt"}
        with pytest.raises(RuntimeError), store.writing("datasets/h2") as folder:
            (folder / "a").write_text("a")
            raise RuntimeError("the writer failed")
        assert not store.exists("datasets/h2") and not folder.exists()

    def test_listing_and_removal(self, store: ArtifactStore) -> None:
        for key in ("models/a", "models/b", "reports/x/1", "reports/x/2"):
            store.put_bytes(key, "f.txt", key.encode())
        assert store.list() == ["models/a", "models/b", "reports/x/1", "reports/x/2"]
        assert store.list("reports/x") == ["reports/x/1", "reports/x/2"]
        assert store.list("nothing/here") == []
        store.remove("models/a")
        store.remove("models/never")  # no error
        assert not store.exists("models/a") and store.list("models") == ["models/b"]
        with pytest.raises(NotFoundError):
            store.read_bytes("models/a", "f.txt")

    def test_a_copy_out_commits_into_another_store_checked_against_its_manifest(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        store.commit_dir(stage(store), "models/m")
        manifest = store.copy_out("models/m", tmp_path / "m")
        assert read_tree(tmp_path / "m") == FILES and (tmp_path / "m" / MARKER).is_file()
        other = LocalArtifactStore(tmp_path / "other")
        assert other.copy_in(tmp_path / "m", "models/m") == manifest
        assert other.copy_in(tmp_path / "m", "models/m") == manifest  # the same content again: kept
        assert read_tree(other.local("models/m")) == FILES and other.manifest("models/m") == manifest
        (tmp_path / "m" / "classifier.json").write_bytes(b"changed")
        with pytest.raises(ChecksumError, match=r"classifier\.json is missing or not the file"):
            store.copy_in(tmp_path / "m", "models/damaged")
        (tmp_path / "m" / MARKER).unlink()
        with pytest.raises(ChecksumError, match="has no commit marker"):
            store.copy_in(tmp_path / "m", "models/damaged")
        assert not store.exists("models/damaged")
        store.commit_dir(stage(store, {"other.txt": b"x"}), "models/taken")
        other.copy_out("models/m", tmp_path / "again")
        with pytest.raises(ChecksumError, match="exists already with other content"):
            store.copy_in(tmp_path / "again", "models/taken")


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3-compatible server on 127.0.0.1 (a free port), for the session; yields its URL."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_options(endpoint: str) -> dict[str, Any]:
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "eu-west-1"},
        "use_listings_cache": False,
    }


def new_bucket(endpoint: str) -> str:
    import s3fs

    bucket = f"loopwise-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**s3_options(endpoint)).mkdir(bucket)
    return bucket


def s3_settings(endpoint: str, home: Path, bucket: str, **more: Any) -> Settings:
    """Settings of a host whose artifacts live in ``bucket`` of the server at ``endpoint``."""
    return Settings(
        home=home, artifacts=f"s3://{bucket}/artifacts", artifacts_options=s3_options(endpoint), **more
    )
