"""Summarizing windows of traffic: one pass, summaries that merge to exactly what one pass gives, the same
result from several reading processes as from one, packed embeddings, and lines that are skipped."""

from __future__ import annotations

import time
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise.monitoring import baseline as baselines
from loopwise.monitoring.checks import check_window
from loopwise.monitoring.scan import scan
from loopwise.monitoring.text import _MOJIBAKE, MAX_BROKEN_SHARE, MIN_LETTER_SHARE, is_garbled
from loopwise.monitoring.window import SAMPLE_SIZE, Context, WindowBuilder, window_of
from loopwise.serving.capture import CaptureWriter, pack_embeddings, unpack_embeddings

LABELS = ["neg", "pos"]
WORDS = [
    "the",
    "dress",
    "fits",
    "well",
    "soft",
    "fabric",
    "lovely",
    "colour",
    "runs",
    "small",
    "large",
    "return",
]


def _texts(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 12)))) for _ in range(n)]


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> baselines.Baseline:
    rng = np.random.default_rng(0)
    texts = _texts(rng, 400)
    proba = rng.dirichlet([2, 2], size=400)
    embeddings = _unit(rng.normal(size=(400, 8)))
    folder = tmp_path_factory.mktemp("baseline")
    statistics, constraints, vocab, reference = baselines.compute(
        texts, proba, LABELS, embeddings, source={"test": True}, reference_size=300
    )
    baselines.save(folder, statistics, constraints, vocab, reference)
    return baselines.load(folder)


def _records(rng: np.random.Generator, n: int, prefix: str, shift: float = 0.0) -> list[dict]:
    """Capture records of one or two texts each, as the data plane offers them."""
    records = []
    for i in range(n):
        size = 1 + i % 2
        texts = _texts(rng, size)
        if i % 17 == 0:
            texts[0] = "#### 1234 $$$ %%%"  # garbled
        if i % 29 == 0:
            texts[-1] = "zorglub quixotic blorft " + texts[-1]  # unknown words
        proba = rng.dirichlet([2, 2], size=size)
        records.append(
            {
                "inference_id": f"{prefix}-{i}",
                "endpoint": "reviews",
                "variant": prefix,
                "model": "m:1",
                "time": time.time(),
                "input": texts,
                "labels": LABELS[::-1],  # another order than the baseline's: reordered when read
                "probabilities": proba[:, ::-1],
                "predicted_label": [LABELS[int(p.argmax())] for p in proba],
                "embedding": _unit(rng.normal(size=(size, 8)) + shift),
            }
        )
    return records


def _same_windows(a, b) -> None:  # type: ignore[no-untyped-def]
    assert a.records == b.records and a.texts == b.texts
    np.testing.assert_array_equal(a.chars, b.chars)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    np.testing.assert_array_equal(a.class_counts, b.class_counts)
    for name in ("empty", "garbled", "length_outside", "words", "unknown_words", "unknown_labels"):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert a.examples == b.examples and a.truth == b.truth and a.matched == b.matched
    np.testing.assert_array_equal(a.truth_proba, b.truth_proba)


def test_summaries_of_parts_merge_to_the_summary_of_the_whole(baseline: baselines.Baseline) -> None:
    rng = np.random.default_rng(1)
    records = _records(rng, 1500, "A")
    truth = {f"A-{i}": ("pos", "neg") for i in range(0, 1500, 7)} | {"A-3": ("maybe",)}
    context = Context.of(baseline, truth)

    whole = WindowBuilder(context)
    for record in records:
        whole.add_record(record, unpack_embeddings)
    one = whole.build()
    for cuts in ([700], [1, 2, 900, 1499], [300, 600, 900, 1200]):
        parts = [WindowBuilder(context) for _ in range(len(cuts) + 1)]
        for i, record in enumerate(records):
            parts[sum(i >= cut for cut in cuts)].add_record(record, unpack_embeddings)
        merged = parts[0]
        for part in parts[1:]:
            merged.merge(part)
        _same_windows(merged.build(), one)

    assert one.records == 1500 and one.texts == 2250
    assert one.embeddings is not None and one.embeddings.shape == (SAMPLE_SIZE, 8)
    garbled = sum(text == "#### 1234 $$$ %%%" for record in records for text in record["input"])
    assert one.garbled == garbled > 80 and one.examples["garbled"] == ["#### 1234 $$$ %%%"] * 5
    assert one.examples["oov"][0].startswith("zorglub quixotic blorft")
    assert one.unknown_words >= 3 * 52 and 0 < one.oov_rate < 0.1
    # ground truth joins by inference id and position; a label the model does not know is counted
    assert one.unknown_labels == 1 and one.matched == set(truth)
    assert len(one.truth) == sum(len(records[i]["input"]) for i in range(0, 1500, 7))
    # probabilities were put in the baseline's label order
    first = records[0]
    assert one.confidence[0] == pytest.approx(max(first["probabilities"][0]))
    assert one.class_counts.sum() == one.texts


def test_the_embedding_sample_is_bounded_and_ignores_how_records_arrive(
    baseline: baselines.Baseline,
) -> None:
    rng = np.random.default_rng(2)
    records = _records(rng, 1200, "A")
    context = Context.of(baseline)
    forward, backward = WindowBuilder(context, sample_size=50), WindowBuilder(context, sample_size=50)
    for record in records:
        forward.add_record(record, unpack_embeddings)
    for record in reversed(records):
        backward.add_record(record, unpack_embeddings)
    rows = {tuple(v) for v in forward.build().embeddings}  # type: ignore[union-attr]
    assert len(rows) == 50 and rows == {tuple(v) for v in backward.build().embeddings}  # type: ignore[union-attr]
    # a packed embedding that is not valid is counted, its text still summarized
    broken = dict(records[0], embedding={"dtype": "float16", "shape": [1, 8], "base64": "!!"})
    builder = WindowBuilder(context)
    builder.add_record(broken, unpack_embeddings)
    assert builder.bad_embeddings == 1 and builder.build().texts == len(broken["input"])


def test_packed_embeddings_round_trip_and_older_lists_still_read() -> None:
    rng = np.random.default_rng(3)
    embeddings = _unit(rng.normal(size=(3, 384)))
    packed = pack_embeddings(embeddings)
    # 2 bytes a number, in base64: 3,072 characters where the numbers written out take over 12,000
    assert packed["shape"] == [3, 384] and len(packed["base64"]) == 3072
    assert len(str(embeddings.tolist())) > 4 * 3072
    back = unpack_embeddings(packed)
    assert back is not None and back.dtype == np.float32
    np.testing.assert_allclose(back, embeddings, atol=1e-3)
    np.testing.assert_array_equal(unpack_embeddings(embeddings.tolist()), embeddings)
    assert unpack_embeddings(None) is None
    for bad in (
        {"dtype": "float64", "shape": [3, 384], "base64": packed["base64"]},
        {"dtype": "float16", "shape": [4, 384], "base64": packed["base64"]},
        {"dtype": "float16", "base64": packed["base64"]},
        [1.0, 2.0],
    ):
        with pytest.raises(ValueError):
            unpack_embeddings(bad)


def _write(root: Path, records: list[dict], at: datetime) -> None:
    writer = CaptureWriter(root)
    for i, record in enumerate(records):
        writer.offer({**record, "time": (at + timedelta(seconds=i)).timestamp()})
    writer.close()


def test_several_reading_processes_find_what_one_finds(baseline: baselines.Baseline, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    start = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    root = tmp_path / "capture"
    _write(root, _records(rng, 2000, "A"), start)  # 10:30 to 11:03: two hour partitions
    _write(root, _records(rng, 300, "B", shift=0.8), start + timedelta(hours=1))
    outside = _records(rng, 50, "A")
    _write(root, outside, start - timedelta(hours=3))  # an hour outside the window: not opened
    corrupt = next((root / "reviews" / "A").rglob("*.jsonl"))
    with corrupt.open("ab") as handle:
        handle.write(b'{"input": ["x"], "labels": ["neg", "pos"], "probabilities": [["a", "b"]]}\n')
        handle.write(b"not json\n")
    since, until = start, start + timedelta(hours=2)
    truth = {"A-5": ("pos",), "B-7": ("neg",)}

    one = scan(root, "reviews", since, until, Context.of(baseline, truth), workers=1)
    read: list[tuple[int, int]] = []
    context = Context.of(baseline, truth)
    many = scan(root, "reviews", since, until, context, workers=2, progress=lambda *n: read.append(n))
    assert read == [(1, 3), (2, 3), (3, 3)]
    assert one.files == many.files == 3 and one.skipped_lines == many.skipped_lines == 2
    assert set(one.variants) == set(many.variants) == {"A", "B"}
    for name in one.variants:
        _same_windows(one.variants[name], many.variants[name])
    assert one.variants["A"].records == 2000 and one.variants["B"].records == 300
    assert one.variants["A"].matched == {"A-5"} and one.variants["B"].matched == {"B-7"}
    # a window cut inside an hour reads only that part of it
    part = scan(root, "reviews", since, since + timedelta(minutes=10), Context.of(baseline))
    assert part.variants["A"].records == 601 and "B" not in part.variants

    checked_a = check_window(baseline, one.variants["A"])
    checked_b = check_window(baseline, one.variants["B"])
    assert checked_a.drift["embeddings"]["p_value"] > 0.01
    assert checked_b.drift["embeddings"]["p_value"] <= 0.01
    assert "embeddings" in {v.constraint for v in checked_b.violations}


def test_a_window_of_texts_in_memory(baseline: baselines.Baseline) -> None:
    rng = np.random.default_rng(5)
    texts = _texts(rng, 120)
    proba = rng.dirichlet([2, 2], size=120)
    window = window_of(baseline, texts, proba, _unit(rng.normal(size=(120, 8))))
    assert window.texts == window.records == 120 and window.embeddings is not None
    report = check_window(baseline, window)
    assert report.status in ("ok", "violations") and set(report.drift) >= {"embeddings", "length"}
    other_model = window_of(baseline, texts, proba, _unit(rng.normal(size=(120, 16))))
    noted = check_window(baseline, other_model)
    assert "embeddings" not in noted.drift and "16 dimensions" in noted.notes[0]


def _garbled_by_the_definition(text: str) -> bool:
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return False
    if sum(c.isalpha() for c in visible) / len(visible) < MIN_LETTER_SHARE:
        return True
    broken = sum(c == "\ufffd" or unicodedata.category(c) in ("Cc", "Co", "Cs") for c in visible)
    broken += 2 * len(_MOJIBAKE.findall(text))
    return broken / len(visible) > MAX_BROKEN_SHARE


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60) | st.text(max_size=30))
def test_the_fast_path_for_ascii_text_agrees_with_the_definition(text: str) -> None:
    assert is_garbled(text) == _garbled_by_the_definition(text)
