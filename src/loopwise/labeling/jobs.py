"""Labeling jobs, their categories, and the tasks workers get, as the rest of loopwise sees them."""

from __future__ import annotations

import re

from loopwise.errors import LabelingError
from loopwise.labeling.records import Category

MAX_WORKERS_PER_ITEM = 9
#: the most categories a job may have (keys 1-9 and 0 answer the first ten on the labeling page)
MAX_CATEGORIES = 20
#: Ground Truth's bounds for a task's time limit: 30 seconds to 8 hours
TASK_TIME_LIMIT_S = (30, 8 * 3600)
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


#: the course's sentiment categories (Lab 3) with their short instructions
COURSE_CATEGORIES = (
    Category("1", "joy, excitement, delight"),
    Category("0", "neither positive or negative, such as stating a fact"),
    Category("-1", "anger, sarcasm, anxiety"),
)
COURSE_TITLE = "Classify Reviews into sentiment: -1 (negative), 0 (neutral), 1 (positive)"
COURSE_FULL_INSTRUCTIONS = (
    "Read the whole review, then choose the sentiment it expresses about the product.\n\n"
    "1 (positive): joy, excitement, delight.\n"
    "0 (neutral): neither positive or negative, such as stating a fact.\n"
    "-1 (negative): anger, sarcasm, anxiety.\n\n"
    "Mixed reviews: choose what the review says overall. Judge the text, not the star rating you would "
    "give. Skip a review you cannot judge (another language, empty, garbled) instead of guessing."
)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise LabelingError(
            f"job name {name!r}: 1 to 63 letters, digits and hyphens, starting and ending with a letter "
            "or digit"
        )
    return name


def check_categories(categories: list[Category]) -> list[Category]:
    if not 2 <= len(categories) <= MAX_CATEGORIES:
        raise LabelingError(
            f"a job needs 2 to {MAX_CATEGORIES} categories (keys 1-9 and 0 answer the first ten, a click "
            f"or Tab the others); got {len(categories)}"
        )
    labels = [c.label for c in categories]
    if len(set(labels)) != len(labels):
        raise LabelingError(f"categories repeat a label: {labels}")
    for label in labels:
        if not label.strip() or len(label) > 100:
            raise LabelingError(f"category label {label!r}: 1 to 100 characters, not blank")
    return categories


def parse_category(text: str) -> Category:
    """``LABEL=description`` (or a bare ``LABEL``) as the command line takes it."""
    label, _, description = text.partition("=")
    return Category(label.strip(), description.strip())
