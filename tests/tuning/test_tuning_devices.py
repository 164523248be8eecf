"""Device pools for parallel trials: each running trial gets its own devices as its CUDA_VISIBLE_DEVICES,
a device returns to the pool when its trial ends (however it ends), max_parallel_trials defaults to the
pool's size, and on Ray trials ask the cluster for GPUs (a local Ray declaring logical GPUs)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import FrozenTrial, TrialState

from cli_helpers import usage_error
from loopwise.cli import main
from loopwise.errors import ConfigurationError
from loopwise.storage import Store
from loopwise.tuning import parse_spec
from loopwise.tuning.devices import DEVICES_ATTR, DevicePool, parse_devices, trial_pool, visible_devices
from loopwise.tuning.executors import ProcessExecutor
from loopwise.tuning.records import JobStatus
from loopwise.tuning.service import job_trials, run_job, start_job

pytestmark = pytest.mark.sqlite_only


def _spec(dataset: str, **overrides: Any) -> dict[str, Any]:
    """A TF-IDF job that leaves max_parallel_trials unset: its trials run one per device share."""
    return {
        "name": "pool",
        "dataset": dataset,
        "backend": "tfidf",
        "parameters": {"learning_rate": {"type": "continuous", "min": 1e-5, "max": 1e-3}},
        "strategy": "random",
        "max_trials": 4,
        **overrides,
    }


def _overlap(a: FrozenTrial, b: FrozenTrial) -> bool:
    assert a.datetime_start and a.datetime_complete and b.datetime_start and b.datetime_complete
    return a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete


def _check_shares(trials: list[FrozenTrial], pool: set[str]) -> None:
    """Every trial saw one device of ``pool``; trials that ran at the same time saw different ones, and
    at some moment two ran at once."""
    assert all(t.user_attrs[DEVICES_ATTR] in pool for t in trials), [t.user_attrs for t in trials]
    pairs = [(a, b) for i, a in enumerate(trials) for b in trials[i + 1 :] if _overlap(a, b)]
    assert pairs, "no two trials ran at once"
    assert all(a.user_attrs[DEVICES_ATTR] != b.user_attrs[DEVICES_ATTR] for a, b in pairs)


def test_trials_share_an_explicit_pool_one_device_each_and_status_shows_them(
    store: Store,
    import_small: Callable[[Store], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dataset = import_small(store)
    start_job(store, parse_spec(_spec(dataset)))
    job = run_job(store, "pool", devices=("0", "1"))

    assert job.status is JobStatus.COMPLETED, job.error
    _, trials = job_trials(store, "pool")
    # 4 trials over 2 devices: each device came back to the pool for the next trial
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    _check_shares(trials, {"0", "1"})  # recorded by each trial process from its own environment
    assert {t.user_attrs[DEVICES_ATTR] for t in trials} == {"0", "1"}

    monkeypatch.setenv("LOOPWISE_HOME", str(store.settings.home))
    monkeypatch.setenv("COLUMNS", "200")
    if store.settings.database_url:
        monkeypatch.setenv("LOOPWISE_DATABASE_URL", store.settings.database_url)
    main(["tune", "status", "pool"])
    shown = capsys.readouterr().out
    header = next(line for line in shown.splitlines() if "trial" in line and "state" in line)
    assert "devices" in header


def test_a_killed_or_failed_trial_gives_its_device_back(sqlite_store: Store) -> None:
    # trials of a job that does not exist: each process fails at once, or is killed first
    pool = DevicePool(("0", "1"))
    executor = ProcessExecutor(sqlite_store, "no-such-job", fork_server=False, pool=pool)
    try:
        executor.submit(1, None, None)
        executor.submit(2, None, None)
        seen = {trial: _environ(executor, trial).get("CUDA_VISIBLE_DEVICES") for trial in (1, 2)}
        assert seen == {1: "0", 2: "1"} and pool.free == []
        with pytest.raises(ConfigurationError, match="no free device"):
            executor.submit(3, None, None)
        os.kill(executor.children[1].process.pid, signal.SIGKILL)
        ended = {}
        while len(ended) < 2:
            ended |= {e.trial_id: e.error for e in executor.wait(30)}
        assert "killed by signal 9" in str(ended[1]) and "exited with code 1" in str(ended[2])
        assert pool.free == ["0", "1"] and pool.held == {}
        executor.submit(4, None, None)  # the pool hands the first device out again
        assert _environ(executor, 4)["CUDA_VISIBLE_DEVICES"] == "0"
    finally:
        executor.close()
    assert pool.free == ["0", "1"]  # close() gives back the devices of trials it stopped


def _environ(executor: ProcessExecutor, trial_id: int) -> dict[str, str]:
    """The environment the trial's process started with, as the kernel shows it: read once the process
    runs the trial's command (between fork and exec, /proc shows the parent's environment)."""
    proc = Path(f"/proc/{executor.children[trial_id].process.pid}")
    deadline = time.monotonic() + 30
    while b"loopwise.tuning.trial" not in (proc / "cmdline").read_bytes():
        assert time.monotonic() < deadline, f"trial {trial_id}'s process never ran its command"
        time.sleep(0.01)
    raw = (proc / "environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_a_pool_hands_out_shares_and_takes_them_back_in_order() -> None:
    pool = DevicePool(("2", "3", "5", "7"), per_trial=2)
    assert pool.capacity == 2
    assert pool.take(10) == ("2", "3") and pool.take(11) == ("5", "7")
    pool.release(10)
    pool.release(10)  # twice is harmless
    assert pool.take(12) == ("2", "3")
    with pytest.raises(ConfigurationError, match="devices_per_trial is 3 but the pool has 2"):
        DevicePool(("0", "1"), per_trial=3)


def test_the_pool_follows_the_spec_and_the_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse_spec(_spec("small"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4, GPU-8f2a,-1,6")  # CUDA stops at the first non-device
    assert visible_devices() == ("4", "GPU-8f2a")
    pool = trial_pool(spec, None)
    assert pool is not None and pool.devices == ("4", "GPU-8f2a")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_devices() == () and trial_pool(spec, None) is None  # no GPU: nothing changes
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_devices() == ()  # torch sees no CUDA device on this machine
    on_cpu = parse_spec(_spec("small", static={"device": "cpu"}))
    assert trial_pool(on_cpu, None) is None
    with pytest.raises(ConfigurationError, match=r"static\.device is cpu"):
        trial_pool(on_cpu, ("0",))
    pinned = parse_spec(_spec("small", static={"device": "cuda:1"}))
    with pytest.raises(ConfigurationError, match=r"static\.device cuda:1"):
        trial_pool(pinned, ("0", "1"))


def test_devices_are_parsed_and_bad_lists_refused() -> None:
    assert parse_devices("0,1, 2") == ("0", "1", "2")
    assert parse_devices("GPU-5d1f-aa") == ("GPU-5d1f-aa",)
    for bad, message in [("0,,1", "''"), ("cuda:0", "'cuda:0'"), ("-1", "'-1'"), ("1,1", "1 twice")]:
        with pytest.raises(ConfigurationError, match=message):
            parse_devices(bad)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["start", "default_bayesian", "--devices", "0,x"], "'x' is not a GPU"),
        (["worker", "some-job", "--devices", "1,1"], "twice"),
        (["resume", "some-job", "--devices", ""], "is not a GPU"),
        (["start", "default_bayesian", "--executor", "ray", "--devices", "0"], "on Ray"),
    ],
)
def test_bad_devices_options_are_one_line_usage_errors(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = usage_error(capsys, "tune", *args)
    assert "--devices" in line and named in line


@pytest.mark.ray
def test_on_ray_each_trial_asks_for_a_gpu_and_ray_sets_its_devices(
    sqlite_store: Store, import_small: Callable[[Store], str]
) -> None:
    ray = pytest.importorskip(
        "ray", reason="the Ray executor is an optional extra: pip install 'loopwise[ray]'"
    )
    dataset = import_small(sqlite_store)
    start_job(sqlite_store, parse_spec(_spec(dataset, max_trials=3)))
    # logical GPUs: Ray schedules by them and sets CUDA_VISIBLE_DEVICES for tasks that ask for one
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        job = run_job(sqlite_store, "pool", executor="ray")
    finally:
        ray.shutdown()

    assert job.status is JobStatus.COMPLETED, job.error
    _, trials = job_trials(sqlite_store, "pool")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    _check_shares(trials, {"0", "1"})  # max_parallel_trials unset: two at once, one per logical GPU
