"""Where tensors live and where randomness comes from.

One place picks the device, so chapters run unchanged on CPU or GPU, and one place hands out
seeded generators, so every random number a chapter draws can be re-drawn for a *seed sweep*:
with the environment variable ``DGM_SEED_SWEEP=k`` (k = 1, 2, ...) every seed ``s`` a chapter
passes to :func:`manual_seed` or :func:`sweep_seed` becomes ``s + k * SEED_STRIDE``. The page itself
runs with k = 0 (its own seeds); ``tests/test_sweep.py`` executes every chapter for k = 0..7 and
fails when any of the chapter's claims (its ``assert`` lines) breaks for any k. A chapter may only
state what holds for the whole sweep. :func:`record` notes a chapter's trained or sampled result
so the sweep can print one table of them across seeds.
"""

from __future__ import annotations

import json
import math
import os

import torch

from dgm._validate import check_int

__all__ = ["default_device", "manual_seed", "sweep_seed", "sweep_index", "record", "SEED_STRIDE"]

SWEEP_ENV = "DGM_SEED_SWEEP"
RECORD_ENV = "DGM_SWEEP_RECORD"
SEED_STRIDE = 1_000_003  # a prime far above any seed a chapter uses, so sweep members never share a seed


def default_device() -> torch.device:
    """The device chapters and exercises use: CUDA when available, else CPU.

    Set the environment variable ``DGM_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``...) to override,
    e.g. ``DGM_DEVICE=cpu`` to reproduce CPU results on a GPU machine.
    """
    name = os.environ.get("DGM_DEVICE")
    if name:
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise ValueError(f"DGM_DEVICE={name!r} is not a device torch knows; use e.g. 'cpu' or 'cuda'") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"DGM_DEVICE={name!r} asks for CUDA, but torch.cuda.is_available() is False")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sweep_index() -> int:
    """Which member of a seed sweep this process is: ``DGM_SEED_SWEEP`` (0 when unset)."""
    raw = os.environ.get(SWEEP_ENV, "").strip()
    if not raw:
        return 0
    try:
        k = int(raw)
    except ValueError:
        raise ValueError(f"{SWEEP_ENV} must be a non-negative integer; got {raw!r}") from None
    return check_int(k, SWEEP_ENV, low=0)


def sweep_seed(seed: int) -> int:
    """The seed actually used for ``seed``: ``seed + k * SEED_STRIDE`` in member k of a sweep.

    Use it where a library wants an integer seed (``torch.manual_seed``, scikit-learn's
    ``random_state``); everywhere else pass :func:`manual_seed`'s generator.
    """
    return check_int(seed, "seed", low=0) + sweep_index() * SEED_STRIDE


def manual_seed(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with :func:`sweep_seed` ``(seed)``.

    Pass it to every sampler. Outside a seed sweep the generator is seeded with ``seed`` itself.
    """
    gen = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    gen.manual_seed(sweep_seed(seed))
    return gen


def record(name: str, value):
    """Note a chapter's trained or sampled result ``value`` under ``name``; returns ``value``.

    Outside a sweep this does nothing. When ``DGM_SWEEP_RECORD`` names a file, one JSON line
    ``{"name", "value", "sweep"}`` is appended to it, and the sweep test tabulates the values of
    every name across seeds (minimum, maximum, each seed's value). ``value`` is a number (a bool
    or an int counts) or a string.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string; got {name!r}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"value must be a single number; got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if not isinstance(value, (bool, int, float, str)):
        raise TypeError(f"value must be a number or a string; got {type(value).__name__}")
    path = os.environ.get(RECORD_ENV)
    if path:
        shown = value if not isinstance(value, float) or math.isfinite(value) else str(value)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "value": shown, "sweep": sweep_index()}) + "\n")
    return value
