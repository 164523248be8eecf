"""One rank of a data-parallel training run, started by torch's elastic agent (see
:mod:`loopwise.training.distributed`): ``python -m loopwise.training.ddp_worker WORKDIR``.

Every rank builds the same classifier from ``WORKDIR/spec.json``, joins the process group (``nccl`` when
CUDA is available, each rank on the GPU of its ``LOCAL_RANK``; ``gloo`` on the CPU), and trains its share
of every global batch through :class:`~torch.nn.parallel.DistributedDataParallel`. Rank 0 alone reports
metrics (to ``metrics.jsonl``), saves the classifier and writes ``result.json``, in that order, so a
result means a complete checkpoint. A rank that raises writes ``rank-R.error`` first.

Under Ray Train (:mod:`loopwise.training.ray_train`) ``TorchTrainer`` starts the workers and sets up the
process group; each calls :func:`ray_train_loop`, which runs the same :func:`fit_rank`.

Test hook: ``LOOPWISE_TEST_KILL_RANK=R:K`` makes rank R kill itself with SIGKILL after K optimizer steps;
``R:K:raise`` makes it raise instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from loopwise.classifiers import InMemoryExamples, Reporter, TrainConfig, TransformerClassifier
from loopwise.data.splits import ParquetExamples, read_split
from loopwise.storage.artifacts import local_path
from loopwise.training.distributed import METRICS, RESULT, SPEC, STOP, WorkerSpec

KILL_HOOK = "LOOPWISE_TEST_KILL_RANK"


class Ranks:
    """This process's place in the group: the :class:`~loopwise.classifiers.loop.DataParallel` seam."""

    def __init__(self, rank: int, world_size: int, device: torch.device) -> None:
        self.rank, self.world_size, self.device = rank, world_size, device
        self.steps = 0
        hook = os.environ.get(KILL_HOOK, "").split(":")
        self.kill_after = int(hook[1]) if len(hook) > 1 and int(hook[0]) == rank else None
        self.raise_instead = hook[2:] == ["raise"]

    def wrap(self, model: nn.Module) -> nn.Module:
        # The encoders' buffers (position and token type ids) are constants: no need to broadcast them
        # before every forward pass.
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)

    def mean(self, value: float) -> float:
        """The average of ``value`` over the ranks (called once per optimizer step)."""
        self.steps += 1
        if self.kill_after is not None and self.steps >= self.kill_after:
            if self.raise_instead:
                raise RuntimeError(f"rank {self.rank} failed on purpose at step {self.steps} ({KILL_HOOK})")
            os.kill(os.getpid(), signal.SIGKILL)
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return float(total.item()) / self.world_size

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank."""
        value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


class _RankReporter(Reporter):
    """Rank 0 appends each report to ``metrics.jsonl``; every rank asks, at each report, whether the
    caller made the ``stop`` file, and all stop together when any rank saw it."""

    def __init__(self, ranks: Ranks, workdir: Path) -> None:
        self.ranks, self.workdir = ranks, workdir

    def _write(self, kind: str, step: int, epoch: float, metrics: dict[str, float]) -> None:
        if self.ranks.rank == 0:
            line = json.dumps({"kind": kind, "step": step, "epoch": epoch, "metrics": metrics})
            with open(self.workdir / METRICS, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    def on_train_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self._write("train", step, epoch, metrics)

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self._write("validation", step, epoch, metrics)

    def should_stop(self) -> bool:
        return self.ranks.any((self.workdir / STOP).exists())


def rank_device(local_rank: int) -> tuple[torch.device, str]:
    """This rank's device and process-group backend: with CUDA, GPU ``local_rank`` (made the current
    device, as NCCL requires) and ``nccl``; otherwise the CPU and ``gloo``."""
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"rank {local_rank} has no GPU: {torch.cuda.device_count()} visible; "
                "use at most that many processes"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        return device, "nccl"
    return torch.device("cpu"), "gloo"


def _examples(uri: str, stream: bool) -> Any:
    return ParquetExamples(local_path(uri)) if stream else InMemoryExamples(*read_split(uri))


def train_rank(workdir: Path, rank: int, world_size: int, local_rank: int) -> None:
    """Join the process group (torch's elastic agent set its address), then :func:`fit_rank`."""
    device, backend = rank_device(local_rank)
    dist.init_process_group(backend)
    try:
        fit_rank(workdir, rank, world_size, device)
    finally:
        dist.destroy_process_group()


def fit_rank(workdir: Path, rank: int, world_size: int, device: torch.device) -> None:
    """Train this rank's share of the run in ``workdir`` on ``device``, in the process group that is
    already up; on rank 0, save the model, then the result."""
    spec = WorkerSpec(**json.loads((workdir / SPEC).read_text(encoding="utf-8")))
    classifier = TransformerClassifier(spec.labels, **spec.options)
    classifier.model.to(device)
    ranks = Ranks(rank, world_size, device)
    validation = InMemoryExamples(*read_split(spec.validation_uri)) if spec.validation_uri else None
    result = classifier.fit(
        _examples(spec.train_uri, spec.stream),
        validation,
        # each rank trains on its own device, whatever the run's device said (auto would pick one GPU)
        replace(TrainConfig.from_dict(spec.config), device=str(device)),
        _RankReporter(ranks, workdir),
        progress=False,
        parallel=ranks,
    )
    if rank == 0:
        classifier.model.to("cpu")
        classifier.save(Path(spec.output_dir))
        partial = workdir / (RESULT + ".partial")
        partial.write_text(json.dumps(asdict(result)), encoding="utf-8")
        os.replace(partial, workdir / RESULT)


@contextlib.contextmanager
def errors_recorded(workdir: Path, rank: int) -> Iterator[None]:
    """Write an exception that leaves the block to ``rank-R.error`` (the caller names the rank's error
    with it), and let it pass."""
    try:
        yield
    except BaseException as exc:
        (workdir / f"rank-{rank}.error").write_text(f"{type(exc).__name__}: {exc}", encoding="utf-8")
        raise


def ray_train_loop(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker`` (see :mod:`loopwise.training.ray_train`): the same fit as a
    torchrun rank, in the process group and on the device that ``TorchTrainer`` set up for this worker."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    workdir, rank = Path(config["workdir"]), context.get_world_rank()
    with errors_recorded(workdir, rank):
        fit_rank(workdir, rank, context.get_world_size(), ray.train.torch.get_device())


def main(argv: list[str]) -> int:
    workdir = Path(argv[0])
    rank = int(os.environ["RANK"])
    with errors_recorded(workdir, rank):
        train_rank(workdir, rank, int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
