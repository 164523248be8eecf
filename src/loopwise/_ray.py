"""Joining or starting Ray for loopwise's Ray executors (tuning trials, Ray Train runs): one way, so that
both forward the same environment to Ray's workers and keep Ray's dashboard and logs out of the CLI."""

from __future__ import annotations

import os
from typing import Any

from loopwise.errors import MissingExtraError

#: variables Ray's worker processes need from this one (offline model hubs, quiet tokenizers)
FORWARDED_ENV = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
    "ORT_DISABLE_TELEMETRY",
)


def import_ray(what: str, otherwise: str) -> Any:
    """The ``ray`` module; when it is missing, a :class:`MissingExtraError` saying that ``what`` needs it,
    how to install it, and what to do ``otherwise``."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError(f"{what} needs Ray: pip install 'loopwise[ray]' (or {otherwise})") from None
    return ray


def forwarded_env(*names: str) -> dict[str, str]:
    """This process's values of :data:`FORWARDED_ENV` and ``names``, for a Ray ``runtime_env``."""
    return {k: v for k, v in os.environ.items() if k in FORWARDED_ENV or k in names}


def init_ray(ray: Any, address: str | None, **resources: Any) -> bool:
    """Connect to the cluster at ``address`` (``auto``, ``ray://host:10001``), or start a local Ray with
    ``resources`` (``num_cpus``...) when there is none; nothing when this process joined one already.
    Returns whether this call started or joined it (then the caller shuts it down)."""
    if ray.is_initialized():
        return False
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": forwarded_env()},
        **({} if address else resources),
    )
    return True
