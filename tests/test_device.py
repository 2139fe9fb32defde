"""Tests of dgm.device: device choice from DGM_DEVICE, and seeded generators."""

from __future__ import annotations

import pytest
import torch

from dgm.device import default_device, manual_seed


def test_default_device_without_override_follows_cuda_availability(monkeypatch):
    monkeypatch.delenv("DGM_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == torch.device("cuda")


def test_dgm_device_cpu_overrides_a_present_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("DGM_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")


def test_empty_dgm_device_is_ignored(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("DGM_DEVICE", "")
    assert default_device() == torch.device("cpu")


def test_dgm_device_names_a_cuda_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("DGM_DEVICE", "cuda:1")
    assert default_device() == torch.device("cuda", 1)


def test_dgm_device_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("DGM_DEVICE", "cuda")
    with pytest.raises(ValueError, match=r"DGM_DEVICE='cuda' asks for CUDA, but torch.cuda.is_available\(\) is False"):
        default_device()


def test_unknown_dgm_device_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DGM_DEVICE", "gpu0")
    with pytest.raises(ValueError, match="DGM_DEVICE='gpu0' is not a device torch knows"):
        default_device()


def test_manual_seed_gives_reproducible_independent_streams():
    a = torch.randn(5, generator=manual_seed(0))
    b = torch.randn(5, generator=manual_seed(0))
    c = torch.randn(5, generator=manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # it does not touch torch's global generator
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    manual_seed(5)
    assert torch.equal(torch.rand(3), expected)


def test_manual_seed_places_the_generator_on_the_device():
    assert manual_seed(0).device == torch.device("cpu")
    assert manual_seed(0, "cpu").device == torch.device("cpu")


@pytest.mark.parametrize("seed", [1.0, "1", True, None])
def test_manual_seed_rejects_non_integers(seed):
    with pytest.raises(TypeError, match=r"seed must be a non-negative integer; got .* \((float|str|bool|NoneType)\)"):
        manual_seed(seed)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; torch.cuda.is_available() is False")
def test_cuda_generator_and_default_device(monkeypatch):
    monkeypatch.delenv("DGM_DEVICE", raising=False)
    assert default_device().type == "cuda"
    gen = manual_seed(0, "cuda")
    assert gen.device.type == "cuda"
    assert torch.randn(3, device="cuda", generator=gen).device.type == "cuda"
