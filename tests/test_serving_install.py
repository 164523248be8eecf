"""A host that only serves: the core of pyproject.toml (no extra) installed from requirements.lock into a
fresh virtual environment holds neither torch nor transformers, and its `loopwise server` serves a model
exported to ONNX elsewhere; a command that needs the train extra says which pip install adds it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from auth_helpers import admin_token, bearer
from loopwise.classifiers import TrainConfig
from loopwise.classifiers.onnx import OnnxClassifier
from loopwise.config import Settings
from loopwise.registry.exports import serving_dir
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train
from test_lock import ENVIRONMENT, LOCK, ROOT

#: what a serving host must not have
HEAVY = ("torch", "transformers")
TEXTS = ["I love this product!", "OK, but not great.", "This is not the right product."]


def _lock_entries() -> dict[str, tuple[str, set[str]]]:
    """name -> (its pinned, hashed entry in the lock, the packages its "via" comments name)."""
    entries = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", entry)
        if match:
            via = re.findall(r"#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)[^\n]*$", entry, re.MULTILINE)
            parents = {canonicalize_name(v) for v in via if v != "via"}
            entries[canonicalize_name(match[1])] = (entry.strip() + "\n", parents)
    return entries


def serving_set() -> dict[str, str]:
    """The lock's entries of the core's requirements and everything they need (followed down the lock's
    "via" comments), by name: what `pip install loopwise` without extras installs, at the lock's pins."""
    entries = _lock_entries()
    children: dict[str, set[str]] = {}
    for name, (_, parents) in entries.items():
        for parent in parents:
            children.setdefault(parent, set()).add(name)
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    todo = [
        canonicalize_name(r.name)
        for r in map(Requirement, core)
        if r.marker is None or r.marker.evaluate(ENVIRONMENT)
    ]
    found: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(children.get(name, set()) - {"loopwise"})
    return {name: entries[name][0] for name in sorted(found)}


def test_the_serving_set_is_the_core_without_torch_or_transformers() -> None:
    served = serving_set()
    assert {"onnxruntime", "tokenizers", "fastapi", "uvicorn", "sqlalchemy", "numpy"} <= set(served)
    assert not set(HEAVY) & set(served), "a core requirement pulls in torch or transformers"
    assert len(served) < len(_lock_entries())


def _uv() -> str:
    """The uv binary of the dev extra (much faster than pip at installing the serving set)."""
    from uv import find_uv_bin

    return str(find_uv_bin())


def _find_links() -> list[str]:
    """pip's configured local wheel folders (PIP_FIND_LINKS or pip config), for uv, which reads neither."""
    configured = (
        os.environ.get("PIP_FIND_LINKS")
        or subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
            capture_output=True,
            text=True,
        ).stdout
    )
    return [arg for link in configured.split() for arg in ("--find-links", link)]


def _plain_env(**extra: str) -> dict[str, str]:
    """This process's environment without what points Python at this checkout or this virtual env."""
    dropped = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, **extra}


def _install_serving_venv(venv: Path) -> float:
    """A fresh virtual environment with the serving set from the lock (pinned, with hashes) and loopwise
    itself without its dependencies; returns the seconds it took."""
    requirements = venv.with_name("serving.txt")
    requirements.write_text("".join(serving_set().values()), encoding="utf-8")
    started = time.monotonic()
    env = _plain_env()
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env)
    python = ["--python", str(venv / "bin" / "python")]
    install = [_uv(), "pip", "install", "--quiet", *python, *_find_links()]
    subprocess.run([*install, "--require-hashes", "--no-deps", "-r", str(requirements)], check=True, env=env)
    subprocess.run([*install, "--no-deps", str(ROOT)], check=True, env=env)
    # every installed package's requirements (loopwise's core included) are met by the serving set
    subprocess.run([_uv(), "pip", "check", *python], check=True, env=env, capture_output=True)
    return time.monotonic() - started


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _predict_when_served(url: str, token: str, server: subprocess.Popen[str]) -> httpx.Response:
    """The endpoint's answer to TEXTS once the server has started its workers (within 120 s)."""
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=url, headers=bearer(token), timeout=30) as client:
        while True:
            assert server.poll() is None, f"the server exited: {server.communicate()[1]}"
            try:
                answer = client.post("/api/v1/endpoints/reviews/predict", json={"texts": TEXTS})
                if answer.status_code == 200 or time.monotonic() > deadline:
                    return answer
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.25)


@pytest.mark.install
@pytest.mark.timeout(600)
def test_a_host_with_the_core_alone_serves_an_exported_model(
    settings: Settings,
    sqlite_store: Store,
    import_small: Callable[[Store], str],
    tiny_bert_dir: Path,
    tmp_path: Path,
) -> None:
    # exported here (this environment has the train extra), served from the fresh one
    config = TrainConfig(epochs=1, batch_size=8, max_seq_length=32)
    request = TrainRequest(
        dataset=import_small(sqlite_store), base_model=str(tiny_bert_dir), model_name="tiny", config=config
    )
    model = train(sqlite_store, request, progress=False).model
    assert model is not None
    create_endpoint(
        sqlite_store, "reviews", parse_endpoint_config({"variants": [{"name": "A", "model": "tiny:1"}]})
    )
    expected = OnnxClassifier.load(serving_dir(sqlite_store, model)).predict_proba(TEXTS)
    token = admin_token(sqlite_store)

    venv = tmp_path / "serving-venv"
    seconds = _install_serving_venv(venv)
    print(f"serving set installed in {seconds:.1f} s")
    python, loopwise = str(venv / "bin" / "python"), str(venv / "bin" / "loopwise")
    env = _plain_env(LOOPWISE_HOME=str(settings.home), OMP_NUM_THREADS="1", COLUMNS="200")
    env.pop("LOOPWISE_DATABASE_URL", None)
    for heavy in HEAVY:
        tried = subprocess.run([python, "-c", f"import {heavy}"], capture_output=True, text=True, env=env)
        assert tried.returncode != 0 and "ModuleNotFoundError" in tried.stderr, heavy

    # a command that needs the train extra fails with one line that says how to add it
    refused = subprocess.run(
        [loopwise, "train", "--dataset", "small"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert re.fullmatch(
        r"error: this command needs \w+, which this installation lacks: "
        r"pip install 'loopwise\[train\]'",
        line,
    ), line

    port = _free_port()
    server = subprocess.Popen(
        [loopwise, "server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answer = _predict_when_served(f"http://127.0.0.1:{port}", token, server)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert answer.status_code == 200, answer.text
    got = [[p["probabilities"][label] for label in model.labels] for p in answer.json()["predictions"]]
    np.testing.assert_allclose(np.array(got), expected, atol=1e-6)
