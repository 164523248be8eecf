"""Evidently's text and embedding drift decisions on the windows that drift_power.py drew.

Runs in Evidently's own environment (drift_power.py makes it: Evidently 0.7 needs pandas < 3):

    python benchmarks/_drift_evidently.py SPEC.json OUT.json [SHARD SHARDS]

(with SHARD and SHARDS, only every SHARDS-th scenario from the SHARD-th: several processes share the work)

SPEC names an .npz of the texts' embeddings, a JSON list of the texts, the reference rows and the windows
(rows of the same arrays). For each window, Evidently decides as its metrics do by default, here with a
reference of 1,000 texts:

* text: the default drift test for a text column (``get_stattest`` picks "perc_text_content_drift" for a
  reference of at most 1,000 texts: a TF-IDF + SGD domain classifier whose ROC AUC must beat the 95th
  percentile of a random classifier's);
* embeddings: ``EmbeddingsDrift``'s default method (``model(bootstrap=len(reference) < 1000)``: an SGD
  domain classifier on the embeddings, drift when its ROC AUC is above 0.55).

The calls are the ones Evidently's metrics make, without the report around them: its report also draws a
t-SNE map of the embeddings and computes the text test three times, which takes 5-7 s a window here. The
random classifier's percentile depends only on the test half's labels, which are the same for every
window of one size, so it is computed once per size (the value is the same). The first windows are also
run through ``Report`` to check that the decisions are the same.
"""

from __future__ import annotations

import functools
import json
import sys
import time

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType
from evidently.legacy.metrics.data_drift.embedding_drift_methods import model
from evidently.legacy.utils import data_drift_utils
from evidently.metrics import EmbeddingsDrift, ValueDrift

_percentile = data_drift_utils.roc_auc_random_classifier_percentile


@functools.lru_cache(maxsize=16)
def _cached_percentile(labels: bytes, p_value: float) -> float:
    return float(_percentile(np.frombuffer(labels, dtype=np.int64), p_value=p_value))


def _percentile_once(y_test, p_value=0.05, **_: object) -> float:  # type: ignore[no-untyped-def]
    return _cached_percentile(np.asarray(y_test, dtype=np.int64).tobytes(), p_value)


data_drift_utils.roc_auc_random_classifier_percentile = _percentile_once


def _frame(embeddings: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(embeddings, columns=[f"e{i}" for i in range(embeddings.shape[1])])


def decide(
    ref_texts: list[str], ref_frame: pd.DataFrame, texts: list[str], embeddings: np.ndarray
) -> dict[str, float | bool]:
    reference, current = pd.Series(ref_texts), pd.Series(texts)
    test = get_stattest(reference, current, ColumnType.Text, None)
    text = test(reference, current, ColumnType.Text, None)
    method = model(bootstrap=len(ref_frame) < 1000)
    score, drifted, _ = method(_frame(embeddings), ref_frame.copy())
    return {
        "text_score": float(text.drift_score),
        "text_drift": bool(text.drifted),
        "embeddings_score": float(score),
        "embeddings_drift": bool(drifted),
    }


def through_report(
    ref_texts: list[str], ref_embeddings: np.ndarray, texts: list[str], embeddings: np.ndarray
) -> dict[str, float | bool]:
    """The same decisions through Evidently's Report API (slow: for checking :func:`decide`)."""
    columns = [f"e{i}" for i in range(ref_embeddings.shape[1])]
    definition = DataDefinition(text_columns=["text"], embeddings={"emb": columns})

    def dataset(rows: list[str], vectors: np.ndarray) -> Dataset:
        frame = _frame(vectors)
        frame["text"] = rows
        return Dataset.from_pandas(frame, data_definition=definition)

    report = Report([ValueDrift(column="text"), EmbeddingsDrift(embeddings_name="emb")], include_tests=True)
    snapshot = report.run(dataset(texts, embeddings), dataset(ref_texts, ref_embeddings)).dict()
    values = [metric["value"] for metric in snapshot["metrics"]]
    text_test = next(t for t in snapshot["tests"] if "column text" in t["name"])
    return {
        "text_score": float(values[0]),
        "text_drift": text_test["status"] == "FAIL",
        "embeddings_score": float(values[1]),
    }


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    embeddings = np.load(spec["embeddings"])["embeddings"].astype(np.float32)
    with open(spec["texts"], encoding="utf-8") as handle:
        texts = json.load(handle)
    reference = np.asarray(spec["reference"])
    ref_texts = [texts[i] for i in reference]
    ref_embeddings = embeddings[reference]
    ref_frame = _frame(ref_embeddings)
    shard, shards = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (0, 1)
    mine = list(spec["windows"])[shard::shards]
    spec["windows"] = {scenario: spec["windows"][scenario] for scenario in mine}
    results: dict[str, dict[str, list[dict[str, float | bool]]]] = {}
    checked = []
    started = time.perf_counter()
    done = 0
    total = sum(len(reps) for sizes in spec["windows"].values() for reps in sizes.values())
    for scenario, sizes in spec["windows"].items():
        for size, reps in sizes.items():
            found = results.setdefault(scenario, {}).setdefault(size, [])
            for rows in reps:
                window_texts = [texts[i] for i in rows]
                decision = decide(ref_texts, ref_frame, window_texts, embeddings[rows])
                found.append(decision)
                if len(checked) < spec.get("check_with_report", 0) and len(found) == 1:
                    via_report = through_report(ref_texts, ref_embeddings, window_texts, embeddings[rows])
                    same = via_report["text_drift"] == decision["text_drift"] and np.isclose(
                        via_report["embeddings_score"], decision["embeddings_score"]
                    )
                    checked.append({"scenario": scenario, "size": size, "same": bool(same), **via_report})
                done += 1
                if done % 200 == 0:
                    rate = done / (time.perf_counter() - started)
                    print(f"evidently: {done}/{total} windows, {rate:.1f}/s", file=sys.stderr, flush=True)
    out = {
        "results": results,
        "checked_with_report": checked,
        "seconds": time.perf_counter() - started,
        "versions": {"evidently": _version("evidently"), "pandas": pd.__version__},
    }
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        json.dump(out, handle)


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
