"""Data-parallel training on a Ray cluster: one run over N Ray Train workers (``loopwise train --executor ray
--processes N [--ray-address auto]``).

The same run as ``--processes N`` on one host (:mod:`loopwise.training.distributed`), through Ray Train's
``TorchTrainer`` instead of torch's elastic agent: TorchTrainer places the N workers on the cluster (a GPU
each with ``use_gpu``), sets up their process group (``nccl`` on GPUs, ``gloo`` on CPUs), and each worker
runs :func:`loopwise.training.ddp_worker.ray_train_loop`, the same per-rank fit as a torchrun rank. The
results contract is the same: rank 0 alone reports metrics and saves the model, then its result; a worker
that raises fails the run with its error, and no model version is registered.

The work directory (``spec.json``, ``metrics.jsonl``, ``stop``, ``result.json``; see
:mod:`loopwise.training.distributed`) and the staged model live under the artifact root, which every Ray
node must see at the same path (one host, or a shared mount), as it must see the data set's files.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from loopwise._ray import forwarded_env, import_ray, init_ray
from loopwise.classifiers import FitResult, Reporter
from loopwise.errors import ConfigurationError, TrainingError
from loopwise.training.distributed import WorkerSpec, follow, read_result, write_spec

#: the placements whose workers run on the CPU
_HOST_DEVICES = ("cpu", "mps")


def run_ray_train(
    spec: WorkerSpec,
    workers: int,
    workdir: Path,
    reporter: Reporter,
    *,
    address: str | None = None,
    device: str = "auto",
) -> FitResult:
    """Train ``spec`` over ``workers`` Ray Train workers and return rank 0's result.

    ``address``: a running cluster (``auto``, ``ray://host:10001``); without one a local Ray is started
    for the run and shut down after it. ``device``: the run's ``--device``; workers get a GPU each when it
    names CUDA, or when it is ``auto`` and the cluster has a GPU for every worker. Rank 0's reports reach
    ``reporter`` on this thread while the workers train. Raises :class:`TrainingError` naming the failed
    workers and their errors.
    """
    ray = import_ray("--executor ray", "use --executor process")
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from loopwise.training.ddp_worker import KILL_HOOK, ray_train_loop

    started = init_ray(ray, address, num_cpus=max(os.cpu_count() or 1, workers))
    try:
        use_gpu = _use_gpu(device, float(ray.cluster_resources().get("GPU", 0)), workers)
        write_spec(spec, workdir)
        trainer = TorchTrainer(
            ray_train_loop,
            train_loop_config={"workdir": str(workdir)},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
            # Ray Train v2's RunConfig, the default; mypy reads v1's, which lacks worker_runtime_env
            run_config=RunConfig(  # type: ignore[call-arg]
                storage_path=str(workdir / "ray"),
                name="run",
                # a cluster's workers do not inherit this process's environment
                worker_runtime_env={"env_vars": forwarded_env(KILL_HOOK)},
            ),
        )
        failure: list[BaseException] = []
        fitting = threading.Thread(target=_fit, args=(trainer, failure), name="ray-train", daemon=True)
        fitting.start()
        follow(lambda: not fitting.is_alive(), workdir, reporter)
    finally:
        if started:
            ray.shutdown()
    if failure:
        raise TrainingError(
            f"data-parallel training over {workers} Ray workers failed: {_describe(failure[0], workdir)}"
        )
    return read_result(workdir, "see the Ray workers' logs")


def _fit(trainer: Any, failure: list[BaseException]) -> None:
    """``trainer.fit()``, keeping what it raised in ``failure`` (it runs on a thread of its own)."""
    try:
        trainer.fit()
    except BaseException as exc:
        failure.append(exc)


def _use_gpu(device: str, cluster_gpus: float, workers: int) -> bool:
    """Whether each worker takes a GPU; a CUDA device the cluster lacks is refused, never waited for."""
    if device in _HOST_DEVICES:
        return False
    if device == "auto":
        return cluster_gpus >= workers
    if cluster_gpus < workers:
        raise ConfigurationError(
            f"--device {device} asks for a GPU for each of the {workers} Ray workers but the cluster has "
            f"{cluster_gpus:g}: use fewer --processes, add GPU nodes, or use --device cpu"
        )
    return True


def _describe(exc: BaseException, workdir: Path) -> str:
    """Which ranks failed and with what error (their ``rank-R.error``), else what Ray said."""
    errors = sorted(workdir.glob("rank-*.error"), key=lambda path: int(path.stem.split("-")[1]))
    if errors:
        return "; ".join(
            f"rank {path.stem.split('-')[1]} raised {path.read_text(encoding='utf-8')}" for path in errors
        )
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:2000]
