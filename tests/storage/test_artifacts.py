"""The artifact contract on a directory and on a real S3-compatible server (moto), the host's cache of
remote artifacts, the settings that choose a store, and a model served from the cache alone."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from artifact_contract import (
    FILES,
    ArtifactStoreContract,
    moto_s3,
    new_bucket,
    read_tree,
    s3_settings,
    stage,
)

from loopwise.config import Settings
from loopwise.errors import ConfigurationError, MissingExtraError
from loopwise.storage import Store
from loopwise.storage.artifacts import (
    ArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    open_artifacts,
)

__all__ = ["moto_s3"]  # the session's server, used by the fixtures below


class TestDirectoryStore(ArtifactStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        return LocalArtifactStore(tmp_path / "artifacts")


class TestS3Store(ArtifactStoreContract):
    @pytest.fixture
    def store(self, moto_s3: str, tmp_path: Path) -> ArtifactStore:
        return open_artifacts(s3_settings(moto_s3, tmp_path / "home", new_bucket(moto_s3)))


@pytest.fixture
def s3_store(moto_s3: str, tmp_path: Path) -> FsspecArtifactStore:
    store = open_artifacts(s3_settings(moto_s3, tmp_path / "home", new_bucket(moto_s3)))
    assert isinstance(store, FsspecArtifactStore)
    return store


def test_the_cache_keys_copies_by_digest_and_fetches_a_damaged_copy_again(
    s3_store: FsspecArtifactStore,
) -> None:
    s3_store.commit_dir(stage(s3_store), "models/m")
    s3_store.commit_dir(stage(s3_store), "models/same-content")
    cache = s3_store.cache
    local = s3_store.local("models/m")
    digest = s3_store.manifest("models/m").digest
    assert local == cache.root / "objects" / digest and read_tree(local) == FILES
    # the same content under another key, and a second read: no fetch
    assert s3_store.local("models/same-content") == local and s3_store.local("models/m") == local
    assert cache.fetches == 1
    # a corrupted file (same size), a truncated one, a missing one: each detected and fetched again
    weights = local / "weights/part-0.bin"
    for damage in (
        lambda: weights.write_bytes(b"\xff" * len(FILES["weights/part-0.bin"])),
        lambda: weights.write_bytes(FILES["weights/part-0.bin"][:10]),
        lambda: weights.unlink(),
    ):
        damage()
        assert read_tree(s3_store.local("models/m")) == FILES
    assert cache.fetches == 4


def test_the_cache_evicts_the_least_recently_used_beyond_its_bound(s3_store: FsspecArtifactStore) -> None:
    cache = s3_store.cache
    size = len(FILES["weights/part-0.bin"]) + len(FILES["classifier.json"])
    cache.max_bytes = 2 * size + 10  # room for two artifacts
    digests = {}
    for name in ("a", "b", "c"):
        # distinct content, so distinct digests
        s3_store.commit_dir(stage(s3_store, {**FILES, "name.txt": name.encode()}), f"models/{name}")
        digests[name] = s3_store.manifest(f"models/{name}").digest
    cache.max_bytes = 2 * (size + 1) + 1
    s3_store.local("models/a")
    s3_store.local("models/b")
    os.utime(cache.root / "meta" / f"{digests['b']}.json", (1, 1))  # b: used long ago
    s3_store.local("models/a")
    s3_store.local("models/c")  # over the bound: b goes, a (used since) stays
    assert set(cache.entries()) == {digests["a"], digests["c"]}
    assert not (cache.root / "objects" / digests["b"]).exists()
    assert read_tree(s3_store.local("models/b"))["name.txt"] == b"b"  # fetched again when wanted


FETCH = """
import json, sys
from loopwise.config import Settings
from loopwise.storage.artifacts import open_artifacts
store = open_artifacts(Settings.model_validate_json(sys.argv[1]))
local = store.local("models/shared")
print(json.dumps({"fetches": store.cache.fetches, "files": sorted(p.name for p in local.rglob("*"))}))
"""


def test_two_processes_fetching_one_artifact_fetch_it_once(moto_s3: str, tmp_path: Path) -> None:
    settings = s3_settings(moto_s3, tmp_path / "home", new_bucket(moto_s3))
    store = open_artifacts(settings)
    big = {**FILES, "weights/part-1.bin": os.urandom(2 << 20)}  # a few MB, so the fetches overlap
    store.commit_dir(stage(store, big), "models/shared")
    command = [sys.executable, "-c", FETCH, settings.model_dump_json()]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    answers = [json.loads(run.communicate(timeout=60)[0]) for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert sum(a["fetches"] for a in answers) == 1
    assert answers[0]["files"] == answers[1]["files"]
    assert read_tree(store.local("models/shared")) == big and store.cache.fetches == 0
    assert not list((store.cache.root / "tmp").iterdir())


def test_the_artifact_settings_are_checked_when_the_store_opens(
    moto_s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    # the default and both names of a directory
    assert isinstance(open_artifacts(Settings(home=home)), LocalArtifactStore)
    assert open_artifacts(Settings(home=home, artifacts=str(tmp_path / "d"))).url == (tmp_path / "d").as_uri()
    assert open_artifacts(Settings(home=home, artifact_root=tmp_path / "e")).url == (tmp_path / "e").as_uri()
    assert Settings(home=home, artifact_cache_size="512MiB").artifact_cache_size == 512 * 1024**2
    refused = {
        "both": Settings(home=home, artifacts=str(tmp_path / "d"), artifact_root=tmp_path / "e"),
        "unknown scheme": Settings(home=home, artifacts="nosuch://bucket/x"),
        "no bucket": Settings(home=home, artifacts="s3://", artifacts_options={"anon": True}),
        "options for a directory": Settings(home=home, artifacts_options={"anon": True}),
        "missing bucket": s3_settings(moto_s3, home, "not-a-bucket"),
    }
    messages = {}
    for case, settings in refused.items():
        with pytest.raises(ConfigurationError) as caught:
            Store.open(settings)
        messages[case] = str(caught.value)
    assert "LOOPWISE_ARTIFACT_ROOT" in messages["both"] and "nosuch" in messages["unknown scheme"]
    assert "bucket not-a-bucket does not exist or cannot be reached" in messages["missing bucket"]
    monkeypatch.setitem(sys.modules, "s3fs", None)  # an installation without the s3 extra
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    with pytest.raises(MissingExtraError, match=r"pip install 'loopwise\[s3\]'"):
        open_artifacts(Settings(home=home, artifacts="s3://bucket/prefix"))


def test_a_model_registered_on_s3_is_served_by_a_host_that_only_has_the_cache(
    moto_s3: str, tmp_path: Path
) -> None:
    from loopwise.classifiers import load_classifier
    from loopwise.data.service import import_dataset
    from loopwise.serving.config import parse_endpoint_config
    from loopwise.serving.deployment import pool_specs
    from loopwise.serving.router import VariantPool
    from loopwise.serving.service import create_endpoint
    from loopwise.training.service import TrainRequest, train

    bucket = new_bucket(moto_s3)
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    trainer = Store.open(s3_settings(moto_s3, tmp_path / "trainer", bucket, database_url=database))
    rows = tmp_path / "rows.csv"
    rows.write_text("text,label\n" + "".join(f"great {i},1\nawful {i},0\n" for i in range(30)))
    dataset = import_dataset(trainer, rows, name="small", text_column="text", label_column="label")
    outcome = train(
        trainer, TrainRequest(dataset=dataset.ref, backend="tfidf", model_name="m"), progress=False
    )
    assert outcome.model is not None and outcome.model.uri.startswith(f"s3://{bucket}/artifacts/models/")
    assert dataset.split("train").uri.startswith(f"s3://{bucket}/")
    texts = ["great 3", "awful 7", "great awful great"]
    expected = load_classifier(trainer.artifacts.local_file(outcome.model.uri)).predict(texts)
    trainer.close()

    server = Store.open(s3_settings(moto_s3, tmp_path / "server", bucket, database_url=database))
    endpoint = create_endpoint(
        server, "e", parse_endpoint_config({"variants": [{"name": "A", "model": "m:1"}]})
    )
    spec = pool_specs(server, endpoint)["A"]
    assert spec.directory.is_relative_to(server.settings.resolved_artifact_cache_dir)

    async def serve() -> list[str]:
        pool = VariantPool(endpoint.config.variants[0], spec, instances=1)
        await pool.start()
        try:
            answer = await pool.predict(texts)
            return [answer.labels[i] for i in answer.proba.argmax(axis=1)]
        finally:
            await pool.close()

    # in a thread of its own: an event loop another test left running in this thread refuses asyncio.run
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        assert thread.submit(asyncio.run, serve()).result(timeout=120) == list(expected)
    assert not (tmp_path / "server" / "artifacts").exists()  # nothing but the cache on the serving host
    server.close()
