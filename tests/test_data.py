"""Tests of dgm.data: bundled digits, synthetic 2-D samplers and the local MNIST reader.

The MNIST tests write tiny IDX files with their own writer (``write_idx`` below, following the
format's published layout), so nothing is downloaded.
"""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import sklearn.datasets
import torch

from conftest import K_SE
from dgm.data import load_digits, load_mnist, ring_of_gaussians, two_moons, two_points

# --------------------------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sklearn_digits():
    return sklearn.datasets.load_digits()


def test_load_digits_shapes_range_and_labels(sklearn_digits):
    images, labels = load_digits()
    assert images.shape == (1797, 64) and images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    np.testing.assert_array_equal(np.bincount(labels.numpy(), minlength=10), np.bincount(sklearn_digits.target))
    # pixel values 0..16 scaled by 1/16, in sklearn's order
    np.testing.assert_array_equal((images.double() * 16).numpy(), sklearn_digits.data)


def test_load_digits_dtype_and_device():
    images, labels = load_digits(device="cpu", dtype=torch.float64)
    assert images.dtype == torch.float64 and labels.dtype == torch.int64
    with pytest.raises(TypeError, match="dtype must be a floating torch dtype"):
        load_digits(dtype=torch.int64)


# --------------------------------------------------------------------------------------------
# Two moons
# --------------------------------------------------------------------------------------------


def test_two_moons_shape_dtype_and_reproducibility():
    a = two_moons(101, 0.1, torch.Generator().manual_seed(0))
    b = two_moons(101, 0.1, torch.Generator().manual_seed(0))
    c = two_moons(101, 0.1, torch.Generator().manual_seed(1))
    assert a.shape == (101, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert two_moons(5, 0.1, torch.Generator().manual_seed(0), dtype=torch.float64).dtype == torch.float64


def test_two_moons_without_noise_lie_on_the_two_half_circles(generator):
    n = 1001
    x = two_moons(n, 0.0, generator, dtype=torch.float64)
    upper, lower = x[: (n + 1) // 2], x[(n + 1) // 2 :]
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(len(upper), dtype=torch.float64))
    assert bool((upper[:, 1] >= 0).all())
    centre = torch.tensor([1.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close((lower - centre).norm(dim=1), torch.ones(len(lower), dtype=torch.float64))
    assert bool((lower[:, 1] <= 0.5).all())


def test_two_moons_moments(generator):
    # with t ~ U[0, π]: E[cos t] = 0, E[sin t] = 2/π; noise adds N(0, σ²) per coordinate
    n, sigma = 40_000, 0.1
    x = two_moons(n, sigma, generator, dtype=torch.float64)
    upper, lower = x[: n // 2], x[n // 2 :]
    expected_upper = torch.tensor([0.0, 2 / math.pi], dtype=torch.float64)
    expected_lower = torch.tensor([1.0, 0.5 - 2 / math.pi], dtype=torch.float64)
    for part, expected in ((upper, expected_upper), (lower, expected_lower)):
        se = part.std(0) / math.sqrt(len(part))
        assert bool(((part.mean(0) - expected).abs() < K_SE * se).all())


def test_two_moons_noise_is_gaussian_with_the_given_sd():
    # same seed, same t: the difference between noisy and clean points is σ·ε with ε ~ N(0, I)
    n, sigma = 20_000, 0.3
    clean = two_moons(n, 0.0, torch.Generator().manual_seed(5), dtype=torch.float64)
    noisy = two_moons(n, sigma, torch.Generator().manual_seed(5), dtype=torch.float64)
    eps = (noisy - clean) / sigma
    assert bool((eps.mean(0).abs() < K_SE / math.sqrt(n)).all())
    assert bool(((eps.var(0) - 1).abs() < K_SE * math.sqrt(2 / (n - 1))).all())


# --------------------------------------------------------------------------------------------
# Ring of Gaussians
# --------------------------------------------------------------------------------------------


def test_ring_shape_dtype_and_reproducibility():
    a = ring_of_gaussians(64, generator=torch.Generator().manual_seed(0))
    b = ring_of_gaussians(64, generator=torch.Generator().manual_seed(0))
    assert a.shape == (64, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, ring_of_gaussians(64, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("num_modes, radius", [(8, 2.0), (3, 0.5)])
def test_ring_modes_sit_at_equal_angles_on_the_circle_with_equal_weights(generator, num_modes, radius):
    n = 16_000
    x = ring_of_gaussians(n, num_modes=num_modes, radius=radius, std=0.0, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(x.norm(dim=1), torch.full((n,), radius, dtype=torch.float64))
    angle = torch.atan2(x[:, 1], x[:, 0]) % (2 * math.pi)
    k = angle / (2 * math.pi / num_modes)
    torch.testing.assert_close(k, k.round(), atol=1e-9, rtol=0)
    counts = torch.bincount(k.round().long() % num_modes, minlength=num_modes).double()
    assert counts.shape == (num_modes,)
    p = 1 / num_modes
    assert bool(((counts - n * p).abs() < K_SE * math.sqrt(n * p * (1 - p))).all())


def test_ring_noise_has_the_given_std(generator):
    n, std, M, radius = 20_000, 0.05, 8, 2.0
    x = ring_of_gaussians(n, num_modes=M, radius=radius, std=std, generator=generator, dtype=torch.float64)
    angles = 2 * math.pi * torch.arange(M, dtype=torch.float64) / M
    centres = radius * torch.stack([torch.cos(angles), torch.sin(angles)], -1)
    nearest = centres[torch.cdist(x, centres).argmin(1)]  # modes are 1.5 apart, 30 sd: no confusion
    resid = (x - nearest) / std
    assert bool((resid.mean(0).abs() < K_SE / math.sqrt(n)).all())
    assert bool(((resid.var(0) - 1).abs() < K_SE * math.sqrt(2 / (n - 1))).all())


# --------------------------------------------------------------------------------------------
# Two points
# --------------------------------------------------------------------------------------------


def test_two_points():
    x = two_points()
    assert x.shape == (2, 2) and x.dtype == torch.float32
    assert x.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert two_points(dtype=torch.float64).dtype == torch.float64


# --------------------------------------------------------------------------------------------
# Sampler argument errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: two_moons(0, 0.1), ValueError, "n must be a positive integer"),
        (lambda: two_moons(10.0, 0.1), TypeError, r"n must be a positive integer; got 10.0 \(float\)"),
        (lambda: two_moons(10, -0.1), ValueError, "noise must be a finite non-negative"),
        (lambda: two_moons(10, float("nan")), ValueError, "noise must be a finite"),
        (lambda: two_moons(10, "0.1"), TypeError, r"noise must be a finite non-negative number; got '0.1' \(str\)"),
        (lambda: ring_of_gaussians(-1), ValueError, "n must be a positive integer"),
        (lambda: ring_of_gaussians(10, num_modes=0), ValueError, "num_modes must be a positive integer"),
        (lambda: ring_of_gaussians(10, radius=0.0), ValueError, "radius must be a finite positive"),
        (lambda: ring_of_gaussians(10, std=-1.0), ValueError, "std must be a finite non-negative"),
    ],
)
def test_sampler_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------------------------
# MNIST from local IDX files
# --------------------------------------------------------------------------------------------


def write_idx(path, magic: int, array: np.ndarray, *, gz: bool = False, extra: bytes = b"", cut: int = 0):
    """Write ``array`` (uint8) as an IDX file: >i magic, >i per dimension, then the bytes."""
    data = struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes() + extra
    if cut:
        data = data[:-cut]
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(data)


def make_mnist(folder, prefix="train", n=5, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # both ends of the range
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", 2051, images, gz=gz)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", 2049, labels, gz=gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("split, prefix", [("train", "train"), ("test", "t10k")])
def test_load_mnist_round_trip(tmp_path, gz, split, prefix):
    images, labels = make_mnist(tmp_path, prefix, n=6, gz=gz)
    got_images, got_labels = load_mnist(tmp_path, split)
    assert got_images.shape == (6, 28, 28) and got_images.dtype == torch.float32
    assert got_labels.shape == (6,) and got_labels.dtype == torch.int64
    assert float(got_images.min()) == 0.0 and float(got_images.max()) == 1.0
    np.testing.assert_array_equal(np.rint(got_images.double().numpy() * 255).astype(np.uint8), images)
    np.testing.assert_array_equal(got_labels.numpy(), labels)
    got64, _ = load_mnist(str(tmp_path), split, dtype=torch.float64)
    np.testing.assert_allclose(got64.numpy(), images / 255.0, rtol=0, atol=1e-15)


def test_load_mnist_prefers_the_uncompressed_file(tmp_path):
    images, labels = make_mnist(tmp_path, n=3, seed=1)
    make_mnist(tmp_path, n=4, gz=True, seed=2)  # a different set under .gz
    got_images, got_labels = load_mnist(tmp_path)
    assert got_images.shape[0] == 3
    np.testing.assert_array_equal(got_labels.numpy(), labels)


def test_load_mnist_missing_folder_names_the_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\[\.gz\] and train-labels-idx1-ubyte\[\.gz\]"):
        load_mnist(tmp_path / "nowhere")


def test_load_mnist_missing_file_names_it(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"no train-labels-idx1-ubyte or train-labels-idx1-ubyte\.gz"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, "test")


def test_load_mnist_bad_magic(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", 1234, np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="magic number 1234, expected 2051"):
        load_mnist(tmp_path)


def test_load_mnist_swapped_files_are_caught_by_the_magic_number(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", 2051, np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="magic number 2051, expected 2049"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_mnist_truncated_file(tmp_path, gz):
    make_mnist(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", 2051, np.zeros((5, 28, 28), np.uint8), gz=gz, cut=10)
    with pytest.raises(ValueError, match=r"is truncated: header shape \(5, 28, 28\) needs 3936 bytes, the file has 3926"):
        load_mnist(tmp_path)


def test_load_mnist_file_shorter_than_its_header(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="shorter than its 8-byte IDX header"):
        load_mnist(tmp_path)


def test_load_mnist_file_longer_than_its_header_says(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", 2049, np.zeros(5, np.uint8), extra=b"\x00")
    with pytest.raises(ValueError, match="longer than its header says"):
        load_mnist(tmp_path)


def test_load_mnist_count_mismatch(tmp_path):
    make_mnist(tmp_path, n=5)
    write_idx(tmp_path / "train-labels-idx1-ubyte", 2049, np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="holds 5 images but .* holds 4 labels"):
        load_mnist(tmp_path)


def test_load_mnist_corrupt_gzip(tmp_path):
    make_mnist(tmp_path, gz=True)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip")
    with pytest.raises(ValueError, match="not a readable gzip file"):
        load_mnist(tmp_path)


def test_load_mnist_bad_split_and_dtype(tmp_path):
    make_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"split must be one of \['test', 'train'\]; got 'validation'"):
        load_mnist(tmp_path, "validation")
    with pytest.raises(TypeError, match="dtype must be a floating torch dtype"):
        load_mnist(tmp_path, dtype=torch.uint8)
