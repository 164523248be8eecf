"""Bandit math: Thompson sampling follows the evidence, and feedback turns remembered answers into
evidence once each."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from loopwise.experiments.bandit import BanditBook, posterior_mean, thompson


@dataclass(frozen=True)
class Answer:
    inference_id: str
    labels: tuple[str, ...] | None = None
    reward: float | None = None


def test_thompson_sampling_favours_the_arm_with_better_evidence() -> None:
    rng = random.Random(0)
    arms = {"A": (30.0, 100), "B": (70.0, 100)}
    picks = Counter(thompson(["A", "B"], arms, rng) for _ in range(2000))
    assert picks["B"] > 0.99 * 2000  # 0.7 against 0.3 on 100 each: almost always B
    even = Counter(thompson(["A", "B"], {}, rng) for _ in range(2000))
    assert 850 < even["A"] < 1150  # no evidence: a fair coin
    close = Counter(thompson(["A", "B"], {"A": (5.0, 10), "B": (6.0, 10)}, rng) for _ in range(2000))
    assert 300 < close["A"] < 1000  # little evidence: both still explored


def test_the_posterior_mean_starts_at_one_half_and_follows_the_rewards() -> None:
    assert posterior_mean(0.0, 0) == 0.5
    assert posterior_mean(70.0, 100) == pytest.approx(71 / 102)


def test_feedback_rewards_each_remembered_answer_once() -> None:
    book = BanditBook()
    book.remember("reviews", "i1", "A", ["1", "0"])
    book.remember("reviews", "i2", "B", ["1"])
    book.remember("reviews", "i3", "B", ["0"])
    book.remember("other", "i4", "A", ["1"])
    items = [
        Answer("i1", labels=("1", "1")),  # labels: the share answered right
        Answer("i2", reward=0.25),  # a reward as given
        Answer("i3"),  # neither: nothing, and the answer is spent
        Answer("i4", reward=1.0),  # another endpoint's answer
        Answer("unknown", reward=1.0),
    ]
    assert book.evidence("reviews", items) == {"A": (0.5, 1), "B": (0.25, 1)}
    assert book.evidence("reviews", items) == {}  # each answer counts once
    assert book.evidence("other", items) == {"A": (1.0, 1)}


def test_the_book_forgets_the_oldest_answers_past_its_size() -> None:
    book = BanditBook(keep=2)
    for number in range(3):
        book.remember("reviews", f"i{number}", "A", ["1"])
    found = book.evidence("reviews", [Answer(f"i{n}", reward=1.0) for n in range(3)])
    assert found == {"A": (2.0, 2)}  # i0 was forgotten
