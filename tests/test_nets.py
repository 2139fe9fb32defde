"""Tests of dgm.nets: the MLP builder's architecture, seeded initialisation and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import requires_cuda
from dgm.nets import ACTIVATIONS, mlp


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_mlp_architecture_and_shapes(depth):
    net = mlp(3, 16, 2, depth=depth, activation="tanh", generator=torch.Generator().manual_seed(0))
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert len(linears) == depth + 1
    assert sum(isinstance(m, nn.Tanh) for m in net) == depth
    assert isinstance(net[-1], nn.Linear)  # no activation on the output: logits / scores
    assert net(torch.zeros(5, 3)).shape == (5, 2)
    widths = [(m.in_features, m.out_features) for m in linears]
    assert widths == list(zip([3] + [16] * depth, [16] * depth + [2]))


def test_mlp_is_reproducible_from_the_generator_and_follows_the_linear_init_bound():
    a = mlp(4, 32, 1, depth=2, generator=torch.Generator().manual_seed(1))
    b = mlp(4, 32, 1, depth=2, generator=torch.Generator().manual_seed(1))
    c = mlp(4, 32, 1, depth=2, generator=torch.Generator().manual_seed(2))
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)
    for m in a:
        if isinstance(m, nn.Linear):
            bound = 1 / math.sqrt(m.in_features)
            for p in (m.weight, m.bias):
                assert float(p.detach().abs().max()) <= bound
            # U(-b, b) has standard deviation b/√3 ≈ 0.58 b; a loose check that the range is used
            assert float(m.weight.detach().std()) > 0.4 * bound


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_named_activation_builds(name):
    net = mlp(2, 4, 1, depth=1, activation=name, dtype=torch.float64)
    assert isinstance(net[1], ACTIVATIONS[name])
    assert net(torch.ones(3, 2, dtype=torch.float64)).dtype == torch.float64


BAD = [
    ("in_dim zero", dict(in_dim=0, hidden=4, out_dim=1), ValueError, "in_dim must be a positive integer"),
    ("hidden float", dict(in_dim=2, hidden=4.0, out_dim=1), TypeError, r"hidden must be a positive integer; got 4.0 \(float\)"),
    ("out_dim bool", dict(in_dim=2, hidden=4, out_dim=True), TypeError, r"out_dim must be a positive integer; got True \(bool\)"),
    ("depth negative", dict(in_dim=2, hidden=4, out_dim=1, depth=-1), ValueError, "depth must be a non-negative integer"),
    ("activation", dict(in_dim=2, hidden=4, out_dim=1, activation="gelu"), ValueError, "activation must be one of"),
    ("dtype", dict(in_dim=2, hidden=4, out_dim=1, dtype=torch.int64), TypeError, "dtype must be a floating torch dtype"),
    ("generator", dict(in_dim=2, hidden=4, out_dim=1, generator=0), TypeError, "generator must be a torch.Generator"),
]


@pytest.mark.parametrize("kwargs, error, match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_mlp_bad_inputs(kwargs, error, match):
    with pytest.raises(error, match=match):
        mlp(**kwargs)


@pytest.mark.cuda
@requires_cuda
def test_mlp_same_weights_on_cuda():
    cpu = mlp(3, 8, 1, generator=torch.Generator().manual_seed(0))
    gpu = mlp(3, 8, 1, generator=torch.Generator().manual_seed(0), device="cuda")
    for pc, pg in zip(cpu.parameters(), gpu.parameters()):
        assert pg.device.type == "cuda"
        torch.testing.assert_close(pg.cpu(), pc)
    with pytest.raises(ValueError, match="generator must live on the CPU"):
        mlp(3, 8, 1, generator=torch.Generator(device="cuda"))


# --- the time-conditioned denoiser of Chapter 7 ------------------------------------------------


def test_sinusoidal_embedding_matches_its_definition():
    from dgm.nets import sinusoidal_embedding

    t = torch.tensor([1, 7, 100])
    e = sinusoidal_embedding(t, 6, max_period=100.0)
    freqs = [100.0 ** (-k / 3) for k in range(3)]
    want = torch.tensor([[math.cos(ti * f) for f in freqs] + [math.sin(ti * f) for f in freqs] for ti in t.tolist()])
    assert e.shape == (3, 6) and e.dtype == torch.float32
    torch.testing.assert_close(e, want)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(t, 5)
    with pytest.raises(ValueError, match="shape"):
        sinusoidal_embedding(t[:, None], 4)


def test_time_conditioned_mlp_shapes_seeding_and_conditioning():
    from dgm.nets import TimeConditionedMLP

    a = TimeConditionedMLP(3, 16, 2, num_classes=4, generator=torch.Generator().manual_seed(0))
    b = TimeConditionedMLP(3, 16, 2, num_classes=4, generator=torch.Generator().manual_seed(0))
    x, t, y = torch.randn(5, 3), torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 1, 2, 3, 0])
    out = a(x, t, y)
    assert out.shape == (5, 3)
    torch.testing.assert_close(out, b(x, t, y))
    assert not torch.allclose(out, a(x, t, (y + 1) % 4))  # the label matters
    assert not torch.allclose(out, a(x, t + 1, y))  # the timestep matters
    with pytest.raises(ValueError, match="labels y"):
        a(x, t)
    u = TimeConditionedMLP(3, 16, 2, generator=torch.Generator().manual_seed(0))
    assert u(x, t).shape == (5, 3)
    with pytest.raises(ValueError, match="unconditional"):
        u(x, t, y)
    with pytest.raises(ValueError, match="shape"):
        u(torch.randn(5, 4), t)
