"""Datasets that need no network: scikit-learn's bundled digits, small synthetic 2-D sets, and
MNIST read from IDX files already on disk.

Every sampler takes its randomness from the caller (``generator=``) so that a chapter, a test
and a grader draw exactly the same points. Images are floats in ``[0, 1]``; labels are ``int64``.
"""

from __future__ import annotations

import gzip
import math
import os
import struct

import numpy as np
import torch

from dgm._validate import check_int, check_number

__all__ = ["load_digits", "two_moons", "ring_of_gaussians", "two_points", "load_mnist"]


def _target_device(device, generator):
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


def load_digits(device=None, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8×8 handwritten digits bundled with scikit-learn (1797 images, no download).

    Pixel intensities 0..16 are divided by 16.

    Args:
        device: where the tensors go (default CPU).
        dtype: floating dtype of the images.

    Returns:
        ``(images, labels)``: ``images`` of shape ``(N, 64)`` in ``[0, 1]`` (row-major 8×8),
        ``labels`` of shape ``(N,)``, ``int64`` digits 0..9; N = 1797.
    """
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype such as torch.float32; got {dtype!r}")
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = torch.as_tensor(bunch.data / 16.0, dtype=dtype, device=device)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64, device=device)
    return images, labels


def two_moons(
    n: int, noise: float = 0.1, generator: torch.Generator | None = None, *, dtype=torch.float32, device=None
) -> torch.Tensor:
    r"""n i.i.d. points from two interleaved half circles plus Gaussian noise.

    Point i belongs to the upper moon (cos t, sin t) when i < ⌈n/2⌉, else to the lower moon
    (1 - cos t, ½ - sin t), with t ~ U[0, π] drawn independently; then N(0, noise² I) is added.

    Args:
        n: number of points, a positive integer.
        noise: standard deviation of the added Gaussian noise (``>= 0``).
        generator: ``torch.Generator`` for reproducible draws (on ``device``).
        dtype, device: of the result (device defaults to the generator's, else CPU).

    Returns:
        ``(n, 2)`` points.
    """
    n = check_int(n, "n", low=1)
    noise = check_number(noise, "noise", low=0)
    device = _target_device(device, generator)
    n_upper = (n + 1) // 2
    t = math.pi * torch.rand(n, dtype=dtype, device=device, generator=generator)
    upper = torch.stack([torch.cos(t), torch.sin(t)], dim=-1)
    lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=-1)
    is_upper = (torch.arange(n, device=device) < n_upper).unsqueeze(-1)
    points = torch.where(is_upper, upper, lower)
    return points + noise * torch.randn(n, 2, dtype=dtype, device=device, generator=generator)


def ring_of_gaussians(
    n: int,
    num_modes: int = 8,
    radius: float = 2.0,
    std: float = 0.05,
    generator: torch.Generator | None = None,
    *,
    dtype=torch.float32,
    device=None,
) -> torch.Tensor:
    r"""n i.i.d. points from an equal-weight mixture of ``num_modes`` Gaussians on a circle.

    Mode k (drawn uniformly) has mean radius·(cos 2πk/M, sin 2πk/M) and covariance std² I:
    the classic test of whether a generative model covers every mode.

    Args:
        n: number of points; num_modes: M, a positive integer.
        radius: radius of the circle of means (``> 0``); std: per-mode standard deviation (``>= 0``).
        generator: ``torch.Generator`` for reproducible draws (on ``device``).
        dtype, device: of the result (device defaults to the generator's, else CPU).

    Returns:
        ``(n, 2)`` points.
    """
    n = check_int(n, "n", low=1)
    num_modes = check_int(num_modes, "num_modes", low=1)
    radius = check_number(radius, "radius", low=0, closed_low=False)
    std = check_number(std, "std", low=0)
    device = _target_device(device, generator)
    mode = torch.randint(num_modes, (n,), device=device, generator=generator)
    angle = 2 * math.pi * mode.to(dtype) / num_modes
    means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
    return means + std * torch.randn(n, 2, dtype=dtype, device=device, generator=generator)


def two_points(*, dtype=torch.float32, device=None) -> torch.Tensor:
    """The two-image dataset {[1, 0], [0, 1]} of Chapter 1 (where every Gaussian q gives ELBO = -∞).

    Returns:
        ``(2, 2)`` tensor whose rows are the data points [1, 0] and [0, 1].
    """
    return torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=dtype, device=device)


# IDX format (http://yann.lecun.com/exdb/mnist/): big-endian int32 magic number 0x00000803 for
# unsigned-byte 3-D arrays (images) and 0x00000801 for 1-D arrays (labels), then one int32 per
# dimension, then the bytes.
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_MNIST_PREFIX = {"train": "train", "test": "t10k"}


def _read_maybe_gzip(path: str) -> bytes:
    if path.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except (OSError, EOFError) as err:
            raise ValueError(f"{path} is not a readable gzip file: {err}") from err
    with open(path, "rb") as fh:
        return fh.read()


def _find_idx(folder: str, name: str) -> str:
    for candidate in (name, name + ".gz"):
        full = os.path.join(folder, candidate)
        if os.path.isfile(full):
            return full
    raise FileNotFoundError(f"no {name} or {name}.gz in {folder!r}")


def _parse_idx(data: bytes, path: str, magic: int, ndim: int) -> np.ndarray:
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise ValueError(f"{path} is truncated: {len(data)} bytes, shorter than its {header}-byte IDX header")
    found = struct.unpack(">i", data[:4])[0]
    if found != magic:
        raise ValueError(
            f"{path} has magic number {found}, expected {magic} for a {ndim}-D unsigned-byte IDX file "
            "(is it the images/labels file swapped, or not an IDX file?)"
        )
    shape = struct.unpack(f">{ndim}i", data[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(f"{path} is {state}: header shape {shape} needs {expected} bytes, the file has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist(
    path, split: str = "train", *, device=None, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST from the standard IDX files in a local folder (nothing is downloaded).

    Expects ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (split ``"train"``) or
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (split ``"test"``), each
    optionally gzipped (``.gz``); an uncompressed file is preferred when both exist.

    Args:
        path: folder holding the files.
        split: ``"train"`` or ``"test"``.
        device, dtype: of the returned images (labels are ``int64`` on ``device``).

    Returns:
        ``(images, labels)``: ``images`` of shape ``(N, 28, 28)`` (rows × columns as the file's
        header says) with values in ``[0, 1]`` (bytes / 255), ``labels`` of shape ``(N,)`` ``int64``.

    Raises:
        FileNotFoundError: the folder or a file is missing (the message names the file expected).
        ValueError: a bad magic number, a truncated or over-long file, or image/label counts
            that disagree.
    """
    if split not in _MNIST_PREFIX:
        raise ValueError(f"split must be one of {sorted(_MNIST_PREFIX)}; got {split!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype such as torch.float32; got {dtype!r}")
    folder = os.fspath(path)
    prefix = _MNIST_PREFIX[split]
    image_name, label_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"MNIST folder {folder!r} does not exist; it should hold {image_name}[.gz] and {label_name}[.gz]"
        )
    image_path = _find_idx(folder, image_name)
    label_path = _find_idx(folder, label_name)
    images = _parse_idx(_read_maybe_gzip(image_path), image_path, _IDX_IMAGES_MAGIC, 3)
    labels = _parse_idx(_read_maybe_gzip(label_path), label_path, _IDX_LABELS_MAGIC, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{image_path} holds {images.shape[0]} images but {label_path} holds {labels.shape[0]} labels")
    images_t = torch.from_numpy(images.copy()).to(device=device, dtype=dtype) / 255
    labels_t = torch.from_numpy(labels.astype(np.int64)).to(device=device)
    return images_t, labels_t
