"""Where a tuning job's trials run: local processes (the default) or tasks on a Ray cluster.

An executor starts an asked trial (:func:`loopwise.tuning.trial.run_trial` in a process of its own) and
says when it ended. The trial tells the study its own outcome; the executor only reports how the process
ended, so that the tuning worker can fail a trial whose process died without telling (killed, out of
memory) with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from loopwise._ray import import_ray, init_ray
from loopwise.errors import ConfigurationError

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.tuning.devices import DevicePool

EXECUTORS = ("process", "ray")
_ERROR_TAIL = 2000


@dataclass(frozen=True)
class Ended:
    """A trial whose process or task ended; ``error`` says how when it ended abnormally."""

    trial_id: int
    error: str | None = None


class Executor(Protocol):
    #: how many trials the executor's devices run at once (its device pool's shares, or the Ray cluster's
    #: GPUs over ``num_gpus``); None when devices set no limit
    capacity: int | None

    def submit(self, trial_id: int, deadline: float | None, max_examples: int | None) -> None:
        """Start the asked trial; ``deadline``: when it must stop (``time.time()``), if ever;
        ``max_examples``: the most training examples it may process."""

    def running(self) -> int:
        """How many trials this executor is running."""

    def wait(self, timeout: float) -> list[Ended]:
        """The trials that ended, waiting up to ``timeout`` seconds for one when none has."""

    def close(self) -> None:
        """Stop whatever still runs."""


def make_executor(
    kind: str,
    store: Store,
    job_name: str,
    *,
    ray_address: str | None = None,
    slots: int | None = None,
    pool: DevicePool | None = None,
    gpus_per_trial: int = 0,
) -> Executor:
    """``slots``: how many trials run at once here (default: one per share of ``pool``, else 1); local
    processes share the cores between them. ``pool``: the devices local trials take their share from;
    ``gpus_per_trial``: the GPUs each Ray task asks for when the cluster has GPUs."""
    if kind == "process":
        slots = slots or (pool.capacity if pool is not None else 1)
        return ProcessExecutor(store, job_name, threads=max(1, (os.cpu_count() or 1) // slots), pool=pool)
    if kind == "ray":
        return RayExecutor(store, job_name, address=ray_address, gpus=gpus_per_trial)
    raise ConfigurationError(f"unknown executor {kind!r}; use one of {', '.join(EXECUTORS)}")


def _settings_env(store: Store) -> dict[str, str]:
    # Settings travel in the environment, not on the command line, where `ps` would show a database
    # password to every user of the machine.
    settings = store.settings.model_dump(mode="json", exclude_none=True)
    return {f"LOOPWISE_{key.upper()}": str(value) for key, value in settings.items()}


#: what the fork server imports once, so that a trial starts in milliseconds, not seconds
_PRELOAD = [
    "loopwise.tuning.trial",
    "loopwise.training.service",
    "loopwise.classifiers.transformer",
    "loopwise.classifiers.tfidf",
]


@functools.cache
def _fork_server() -> multiprocessing.context.ForkServerContext | None:
    if not sys.platform.startswith("linux"):
        return None
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, multiprocessing.context.ForkServerContext)
    context.set_forkserver_preload(_PRELOAD)
    return context


class _Child:
    """A trial's process: forked from the fork server, or a new interpreter."""

    def __init__(self, process: multiprocessing.process.BaseProcess | subprocess.Popen[bytes], errors: str):
        self.process = process
        self.errors = errors

    def returncode(self) -> int | None:
        if isinstance(self.process, subprocess.Popen):
            return self.process.poll()
        return self.process.exitcode

    def stop(self, timeout: float) -> None:
        if isinstance(self.process, subprocess.Popen):
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        else:
            self.process.terminate()
            self.process.join(timeout)
            if self.process.exitcode is None:
                self.process.kill()
                self.process.join()


def _trial_command(
    job_name: str, trial_id: int, deadline: float | None, max_examples: int | None
) -> list[str]:
    """``python -m loopwise.tuning.trial`` for one trial, dying with this process."""
    command = [sys.executable, "-m", "loopwise.tuning.trial", job_name, str(trial_id)]
    command += ["--parent-pid", str(os.getpid())]
    if deadline is not None:
        command += ["--deadline", f"{deadline:.3f}"]
    if max_examples is not None:
        command += ["--max-examples", str(max_examples)]
    return command


class ProcessExecutor:
    """Each trial in a process of its own that dies with this one. On Linux trials are forked from a fork
    server that imported torch, transformers and loopwise once (a trial starts in milliseconds);
    elsewhere, or with ``fork_server=False``, each is a new ``python -m loopwise.tuning.trial``.

    ``threads``: the compute threads each trial may use (``OMP_NUM_THREADS``, which torch follows), so that
    parallel trials share the cores instead of fighting over them; a value set by the user wins.
    ``pool``: each trial's process gets its own share of these devices as its ``CUDA_VISIBLE_DEVICES``,
    given back when the process ends (see :mod:`loopwise.tuning.devices`)."""

    def __init__(
        self,
        store: Store,
        job_name: str,
        threads: int | None = None,
        *,
        fork_server: bool = True,
        pool: DevicePool | None = None,
    ) -> None:
        self.job_name = job_name
        self.env = _settings_env(store)
        if threads is not None:
            self.env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", str(threads))
        self.context = _fork_server() if fork_server else None
        self.children: dict[int, _Child] = {}
        self.pool = pool
        self.capacity = None if pool is None else pool.capacity

    def submit(self, trial_id: int, deadline: float | None, max_examples: int | None) -> None:
        env = dict(self.env)
        if self.pool is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.pool.take(trial_id))
        try:
            self._start(trial_id, deadline, max_examples, env)
        except BaseException:
            if self.pool is not None:
                self.pool.release(trial_id)
            raise

    def _start(
        self, trial_id: int, deadline: float | None, max_examples: int | None, env: dict[str, str]
    ) -> None:
        handle, errors = tempfile.mkstemp(prefix=f"loopwise-trial-{trial_id}-", suffix=".err")
        os.close(handle)
        if self.context is not None:
            args = (self.job_name, trial_id, deadline, max_examples, env, errors, os.getpid())
            from loopwise.tuning.trial import forked_main

            process: Any = self.context.Process(target=forked_main, args=args, name=f"trial-{trial_id}")
            process.start()
        else:
            command = _trial_command(self.job_name, trial_id, deadline, max_examples)
            with open(errors, "wb") as sink:
                environ = {**os.environ, **env}
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sink, env=environ)
        self.children[trial_id] = _Child(process, errors)

    def running(self) -> int:
        return len(self.children)

    def wait(self, timeout: float) -> list[Ended]:
        end = time.monotonic() + timeout
        while True:
            done = [t for t, child in self.children.items() if child.returncode() is not None]
            if done or time.monotonic() >= end:
                return [self._reap(trial_id) for trial_id in done]
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    def _reap(self, trial_id: int) -> Ended:
        child = self.children.pop(trial_id)
        if self.pool is not None:
            self.pool.release(trial_id)
        code = child.returncode()
        try:
            with open(child.errors, "rb") as errors:
                tail = errors.read().decode("utf-8", "replace")[-_ERROR_TAIL:].strip()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(child.errors)
        if code == 0:
            return Ended(trial_id)
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return Ended(trial_id, f"the trial process {how}: {tail}".rstrip(": "))

    def close(self) -> None:
        for trial_id in list(self.children):
            self.children[trial_id].stop(timeout=10)
            self._reap(trial_id)


def _ray_trial(
    env: dict[str, str], job_name: str, trial_id: int, deadline: float | None, max_examples: int | None
) -> tuple[int, str]:
    """A Ray task: run one trial in a process of its own on the Ray node, which dies with this Ray worker;
    returns its exit code and the tail of its error output."""
    command = _trial_command(job_name, trial_id, deadline, max_examples)
    with tempfile.TemporaryFile() as errors:
        code = subprocess.call(command, stdout=subprocess.DEVNULL, stderr=errors, env={**os.environ, **env})
        errors.seek(0)
        return code, errors.read().decode("utf-8", "replace")[-_ERROR_TAIL:].strip()


class RayExecutor:
    """Each trial a Ray task (one CPU by default) that runs the trial in a process of its own on its node.

    ``address``: a running cluster (``auto``, ``ray://host:10001``); without one a local Ray is started
    for this worker and shut down by :meth:`close`. The cluster's workers must reach the database and the
    artifact root at the same addresses as this process (PostgreSQL and shared storage for real clusters).

    ``gpus``: the GPUs each trial asks for (``num_gpus``) when the cluster has any: Ray's scheduler then
    places the trials and sets each one's ``CUDA_VISIBLE_DEVICES``; on a cluster without GPUs trials ask
    for none.
    """

    def __init__(
        self, store: Store, job_name: str, *, address: str | None = None, cpus: float = 1.0, gpus: int = 0
    ) -> None:
        ray = import_ray("the Ray executor", "choose --executor process")
        self.ray = ray
        self.job_name = job_name
        self.env = _settings_env(store)
        self.refs: dict[Any, int] = {}
        self.started_ray = init_ray(ray, address)
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0)) if gpus else 0.0
        if 0 < cluster_gpus < gpus:
            self.close()
            raise ConfigurationError(
                f"devices_per_trial is {gpus} but the Ray cluster has {cluster_gpus:g} GPU(s): lower "
                "devices_per_trial or add GPU nodes"
            )
        self.num_gpus = gpus if cluster_gpus else 0
        self.capacity = int(cluster_gpus // gpus) if self.num_gpus else None
        self.task = ray.remote(num_cpus=cpus, num_gpus=self.num_gpus, max_retries=0)(_ray_trial)

    def submit(self, trial_id: int, deadline: float | None, max_examples: int | None) -> None:
        ref = self.task.remote(self.env, self.job_name, trial_id, deadline, max_examples)
        self.refs[ref] = trial_id

    def running(self) -> int:
        return len(self.refs)

    def wait(self, timeout: float) -> list[Ended]:
        if not self.refs:
            time.sleep(timeout)
            return []
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        if ready:  # and any others that ended meanwhile
            ready, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        ended = []
        for ref in ready:
            trial_id = self.refs.pop(ref)
            try:
                code, tail = self.ray.get(ref)
                how = None if code == 0 else f"the trial process exited with code {code}: {tail}".rstrip(": ")
                ended.append(Ended(trial_id, how))
            except Exception as exc:  # the task raised, or its worker died
                ended.append(
                    Ended(trial_id, f"the Ray task failed: {type(exc).__name__}: {exc}"[:_ERROR_TAIL])
                )
        return ended

    def close(self) -> None:
        for ref in list(self.refs):
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        self.refs.clear()
        if self.started_ray:
            self.ray.shutdown()
