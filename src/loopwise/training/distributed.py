"""Data-parallel training on one host: N processes, one training run (``loopwise train --processes N``).

The training service calls :func:`run_data_parallel` from its own process, which starts one launcher
process (``python -m loopwise.training.distributed``); the launcher runs PyTorch's elastic agent
(:class:`torch.distributed.launcher.api.elastic_launch`, what ``torchrun --standalone`` runs) with
``nproc_per_node=N`` and no restarts, and the agent starts the ranks (:mod:`loopwise.training.ddp_worker`).

**Why a launcher process around ``elastic_launch``, not ``torchrun`` itself or ``elastic_launch`` in the
caller:** the agent installs its own SIGTERM/SIGINT/SIGHUP/SIGQUIT handlers in the process that runs it,
which must not be the CLI's or a server's; and ``elastic_launch`` raises a ``ChildFailedError`` whose
``failures`` name each failed rank with its exit code or signal, which torchrun only prints as text. The
launcher writes those failures to ``failure.json`` in the work directory; the caller never imports torch.

Files in the work directory (one per run, removed by the caller): ``spec.json`` (:class:`WorkerSpec`),
``metrics.jsonl`` (rank 0's reports, one JSON object a line, read while the ranks train), ``stop`` (made
by the caller when its reporter asks to stop; every rank agrees on it at the next report),
``rank-R.error`` (a rank's own exception), ``failure.json``, ``result.json`` (rank 0's
:class:`~loopwise.classifiers.FitResult`, written last, after the model is saved) and ``launcher.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loopwise.classifiers import FitResult, Reporter
from loopwise.errors import TrainingError

SPEC, METRICS, STOP, RESULT, FAILURE, LOG = (
    "spec.json",
    "metrics.jsonl",
    "stop",
    "result.json",
    "failure.json",
    "launcher.log",
)
#: seconds between two reads of rank 0's metrics while the ranks train
POLL_S = 0.2


@dataclass(frozen=True)
class WorkerSpec:
    """What every rank trains: the classifier to build, its data and configuration, where rank 0 saves it."""

    labels: list[str]
    #: keyword arguments of the transformers classifier's constructor (base_model, max_seq_length)
    options: dict[str, Any]
    #: :meth:`TrainConfig.to_dict`; ``batch_size`` is the global batch, split evenly over the ranks
    config: dict[str, Any]
    train_uri: str
    validation_uri: str | None
    #: read the training split in pools rather than whole
    stream: bool
    #: the (staging) directory rank 0 saves the trained classifier into
    output_dir: str


def check_processes(processes: int, batch_size: int) -> None:
    """Raise :class:`TrainingError` unless ``processes`` >= 1 divides the global ``batch_size``."""
    if processes < 1:
        raise TrainingError(f"processes must be at least 1, got {processes}")
    if batch_size % processes:
        raise TrainingError(
            f"batch size {batch_size} cannot be split evenly over {processes} processes: choose a batch size "
            f"that is a multiple of {processes} (each process trains on batch_size / processes examples)"
        )


def run_data_parallel(spec: WorkerSpec, processes: int, workdir: Path, reporter: Reporter) -> FitResult:
    """Train ``spec`` over ``processes`` local processes and return rank 0's result.

    Rank 0's reports reach ``reporter`` on this thread while the ranks train; when ``reporter.should_stop()``
    says so the ranks stop together at their next report. Blocks until every rank has ended. Raises
    :class:`TrainingError` naming each failed rank with its exit code or signal (and its error when it
    raised one); an interruption of this thread stops the ranks and passes through.
    """
    write_spec(spec, workdir)
    command = [sys.executable, "-m", "loopwise.training.distributed", str(workdir), str(processes)]
    with open(workdir / LOG, "wb") as log:
        launcher = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            follow(lambda: launcher.poll() is not None, workdir, reporter)
        except BaseException:
            _stop(launcher)
            raise
    if launcher.returncode != 0:
        failure = _failure(workdir, launcher.returncode)
        raise TrainingError(f"data-parallel training over {processes} processes failed: {failure}")
    return read_result(workdir, "see the launcher's log")


def write_spec(spec: WorkerSpec, workdir: Path) -> None:
    """``spec.json`` in a new ``workdir``, for every rank to read."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / SPEC).write_text(json.dumps(asdict(spec)), encoding="utf-8")


def read_result(workdir: Path, where: str) -> FitResult:
    """Rank 0's result; a :class:`TrainingError` saying ``where`` to look when the ranks ended without."""
    try:
        result = json.loads((workdir / RESULT).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainingError(f"data-parallel training ended without rank 0's result: {where}") from None
    return FitResult(**result)


def follow(ended: Callable[[], bool], workdir: Path, reporter: Reporter) -> None:
    """Forward rank 0's reports to ``reporter``, and make the ``stop`` file when it asks to stop, until
    ``ended()`` says the ranks have all ended (their last reports forwarded too)."""
    offset = 0
    while True:
        done = ended()
        offset = _forward(workdir / METRICS, offset, reporter)
        if reporter.should_stop() and not (workdir / STOP).exists():
            (workdir / STOP).touch()
        if done:
            return
        time.sleep(POLL_S)


def _forward(path: Path, offset: int, reporter: Reporter) -> int:
    """Report the whole lines of ``path`` after ``offset``; the offset after them."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return offset
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        report = json.loads(line)
        if report["kind"] == "validation":
            reporter.on_validation(report["step"], report["epoch"], report["metrics"])
        else:
            reporter.on_train_step(report["step"], report["epoch"], report["metrics"])
    return offset + end


def _stop(launcher: subprocess.Popen[bytes]) -> None:
    """End the launcher and its ranks (its own process group): SIGTERM, then SIGKILL after 10 s."""
    if launcher.poll() is not None:
        return
    os.killpg(launcher.pid, signal.SIGTERM)
    try:
        launcher.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()


def _failure(workdir: Path, code: int) -> str:
    """Which ranks failed and how, from ``failure.json``; else the launcher's exit and its log's tail."""
    try:
        failures = json.loads((workdir / FAILURE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        tail = (workdir / LOG).read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        return f"the launcher exited with code {code}: " + " | ".join(tail)
    return "; ".join(describe(failure) for failure in failures)


def describe(failure: dict[str, Any]) -> str:
    """``rank 1 was killed by SIGKILL (exit code -9)``, or ``rank 0 exited with code 1: <its error>``."""
    rank, code = failure["rank"], failure["exitcode"]
    text = (
        f"rank {rank} was killed by {failure['signal']} (exit code {code})"
        if failure.get("signal")
        else f"rank {rank} exited with code {code}"
    )
    return f"{text}: {failure['error']}" if failure.get("error") else text


def _launch(workdir: Path, processes: int) -> int:
    """The launcher process: run the ranks under torch's elastic agent; write ``failure.json`` on failure."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",  # what torchrun --standalone uses: a local store on a free port
        rdzv_endpoint="localhost:0",
        max_restarts=0,  # a failed rank fails the run; a restart would train from the start again
        monitor_interval=0.1,
    )
    # torchrun sets 1 thread a rank when unset; an equal share of the cores keeps them busy, not contended
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    try:
        elastic_launch(config, sys.executable)("-m", "loopwise.training.ddp_worker", str(workdir))
    except ChildFailedError as exc:
        failures = []
        for rank, failure in sorted(exc.failures.items(), key=lambda item: (item[1].exitcode >= 0, item[0])):
            error_file = workdir / f"rank-{rank}.error"
            failures.append(
                {
                    "rank": rank,
                    "exitcode": failure.exitcode,
                    "signal": failure.signal_name() if failure.exitcode < 0 else None,
                    "error": error_file.read_text(encoding="utf-8") if error_file.is_file() else None,
                }
            )
        (workdir / FAILURE).write_text(json.dumps(failures), encoding="utf-8")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_launch(Path(sys.argv[1]), int(sys.argv[2])))
