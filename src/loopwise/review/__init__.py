"""Human review (the Augmented AI part): flow definitions, activation conditions on live predictions,
human loops and their lifecycle, and their answers flowing back as ground truth and training data."""

from loopwise.review.conditions import Condition, parse_condition
from loopwise.review.records import Flow, HumanLoop

__all__ = ["Condition", "Flow", "HumanLoop", "parse_condition"]
