"""Where tensors live: one place that picks the device, so chapters run unchanged on CPU or GPU."""

from __future__ import annotations

import os

import torch

__all__ = ["default_device", "manual_seed"]


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


def manual_seed(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``: pass it to every sampler."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    gen = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    gen.manual_seed(seed)
    return gen
