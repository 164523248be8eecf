"""Device pools: which accelerators each of a tuning worker's parallel trials may use.

The process executor hands every running trial its own share of the pool (``devices_per_trial`` devices)
through ``CUDA_VISIBLE_DEVICES``, so the trial's placement sees its share as ``cuda:0``, ``cuda:1``...;
no two running trials share a device, and a trial's share returns to the pool when its process ends,
however it ends. The pool is the ``--devices`` list when given, else the accelerators this machine shows
(:func:`visible_devices`); a spec that runs its trials on the CPU (``static.device: cpu`` or ``mps``)
gets no pool, and neither does a machine without CUDA devices: nothing changes there.

On Ray the cluster's scheduler hands out GPUs instead: each trial task asks for ``devices_per_trial``
GPUs (``num_gpus``) and Ray sets ``CUDA_VISIBLE_DEVICES`` for it.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from loopwise.errors import ConfigurationError

if TYPE_CHECKING:
    from loopwise.tuning.spec import TuningSpec

#: the user attribute in which a trial records the devices it saw (its ``CUDA_VISIBLE_DEVICES``)
DEVICES_ATTR = "devices"
#: what ``--devices`` and ``CUDA_VISIBLE_DEVICES`` may list: GPU indexes, or GPU and MIG UUIDs
_DEVICE = re.compile(r"\d+|(GPU|MIG)-[0-9A-Za-z/-]+")
#: the placements that keep a trial off the CUDA devices
_HOST_DEVICES = ("cpu", "mps")


def parse_devices(text: str) -> tuple[str, ...]:
    """``--devices 0,1,2`` as ``("0", "1", "2")``: GPU indexes (or GPU/MIG UUIDs), each once; raise
    :class:`ConfigurationError` naming the bad entry."""
    entries = tuple(entry.strip() for entry in str(text).split(","))
    for entry in entries:
        if not _DEVICE.fullmatch(entry):
            raise ConfigurationError(
                f"--devices: {entry!r} is not a GPU: list GPU indexes separated by commas, as in 0,1,2 "
                "(or GPU UUIDs, as CUDA_VISIBLE_DEVICES takes them)"
            )
    repeated = sorted({entry for entry in entries if entries.count(entry) > 1})
    if repeated:
        raise ConfigurationError(f"--devices lists {', '.join(repeated)} twice: list each GPU once")
    return entries


def visible_devices() -> tuple[str, ...]:
    """The CUDA devices this process may use, without initialising CUDA here: the entries of
    ``CUDA_VISIBLE_DEVICES`` when it is set (up to the first that is not a device, as CUDA reads it),
    else ``0 .. torch.cuda.device_count() - 1`` (which asks NVML, not the CUDA runtime). Empty on a
    machine without CUDA devices."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        devices: list[str] = []
        for entry in (e.strip() for e in listed.split(",")):
            if not _DEVICE.fullmatch(entry):
                break
            devices.append(entry)
        return tuple(devices)
    import torch

    return tuple(str(index) for index in range(torch.cuda.device_count()))


def uses_accelerators(spec: TuningSpec) -> bool:
    """Whether the spec's trials may run on CUDA devices (``static.device`` auto, cuda or cuda:N)."""
    return str(spec.static.get("device", "auto")) not in _HOST_DEVICES


class DevicePool:
    """The devices a worker's trials share: :meth:`take` a trial's share, :meth:`release` it when the
    trial ends. Used from the tuning worker's thread only."""

    def __init__(self, devices: tuple[str, ...], per_trial: int = 1) -> None:
        if len(devices) < per_trial:
            raise ConfigurationError(
                f"devices_per_trial is {per_trial} but the pool has {len(devices)} device(s) "
                f"({', '.join(devices) or 'none'}): lower devices_per_trial or give more --devices"
            )
        self.devices = devices
        self.per_trial = per_trial
        self.free = list(devices)
        self.held: dict[int, tuple[str, ...]] = {}

    @property
    def capacity(self) -> int:
        """How many trials the pool runs at once."""
        return len(self.devices) // self.per_trial

    def take(self, trial_id: int) -> tuple[str, ...]:
        """A share of free devices for ``trial_id`` (the lowest first); raise :class:`ConfigurationError`
        when too few are free (the worker never starts more trials than :attr:`capacity`)."""
        if len(self.free) < self.per_trial:
            raise ConfigurationError(
                f"no free device for trial {trial_id}: {len(self.held)} trials hold all {len(self.devices)}"
            )
        share, self.free = tuple(self.free[: self.per_trial]), self.free[self.per_trial :]
        self.held[trial_id] = share
        return share

    def release(self, trial_id: int) -> None:
        """Give ``trial_id``'s share back (nothing when it holds none), keeping the pool's order."""
        share = self.held.pop(trial_id, ())
        self.free = [device for device in self.devices if device in self.free or device in share]


def trial_pool(spec: TuningSpec, devices: tuple[str, ...] | None) -> DevicePool | None:
    """The pool for the spec's trials: ``devices`` (``--devices``) or the visible CUDA devices; None when
    the trials run on the host (``static.device`` cpu or mps) or there is no device to hand out. Raises
    :class:`ConfigurationError` for a pool the spec cannot use."""
    device = str(spec.static.get("device", "auto"))
    if not uses_accelerators(spec):
        if devices:
            raise ConfigurationError(
                f"--devices hands GPUs to trials, but the spec's static.device is {device}: "
                "remove --devices, or set static.device to auto or cuda"
            )
        return None
    found = devices if devices else visible_devices()
    if not found:
        return None
    if device.startswith("cuda:") and int(device.split(":")[1]) >= spec.devices_per_trial:
        raise ConfigurationError(
            f"static.device {device} names a GPU that trials do not see: each sees only its own "
            f"{spec.devices_per_trial} device(s) from the pool, as cuda:0 on; use device cuda or auto"
        )
    return DevicePool(found, spec.devices_per_trial)
