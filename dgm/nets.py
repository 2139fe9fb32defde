"""Small neural networks shared by several chapters: a multilayer perceptron builder.

Networks built here are seeded from the caller's ``generator`` so that a chapter, a test and a
grader that pass the same seed start from exactly the same weights (torch's own layer
initialisation draws from the global random state instead).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dgm._validate import check_int, check_number

__all__ = ["mlp", "ACTIVATIONS", "sinusoidal_embedding", "TimeConditionedMLP"]

#: the activations :func:`mlp` accepts by name.
ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}


def mlp(
    in_dim: int,
    hidden: int,
    out_dim: int,
    depth: int = 2,
    activation: str = "relu",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> nn.Sequential:
    r"""A multilayer perceptron x ↦ W_{L+1} a(W_L ⋯ a(W_1 x + b_1) ⋯ + b_L) + b_{L+1}.

    ``depth`` hidden layers of width ``hidden``, each followed by the activation ``a``; the last
    layer is linear (no activation), so the output is a logit, a score or a mean, as the caller
    needs. Every weight and bias is drawn from U(-1/√fan_in, 1/√fan_in), the distribution of
    ``torch.nn.Linear``'s default initialisation, but from ``generator``.

    Args:
        in_dim: input size D; the network maps ``(B, D)`` to ``(B, out_dim)``.
        hidden: width of every hidden layer.
        out_dim: output size.
        depth: number of hidden layers (0 gives a single linear map).
        activation: one of ``ACTIVATIONS`` ("relu", "leaky_relu", "tanh", "silu", "elu").
        generator: ``torch.Generator`` on the CPU for the initial weights (global RNG when None).
        dtype, device: of the parameters.

    Returns:
        ``torch.nn.Sequential`` of ``Linear`` and activation modules.
    """
    in_dim = check_int(in_dim, "in_dim", low=1)
    hidden = check_int(hidden, "hidden", low=1)
    out_dim = check_int(out_dim, "out_dim", low=1)
    depth = check_int(depth, "depth", low=0)
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype such as torch.float32; got {dtype!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"generator must live on the CPU (weights are drawn there, then moved); got one on {generator.device}"
        )
    widths = [in_dim] + [hidden] * depth + [out_dim]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        linear = nn.Linear(fan_in, fan_out, dtype=dtype)
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            # Draw on the CPU from the caller's generator, then move: the same seed gives the
            # same network on every device.
            for param in (linear.weight, linear.bias):
                draw = torch.empty(param.shape, dtype=dtype).uniform_(-bound, bound, generator=generator)
                param.copy_(draw)
        layers.append(linear)
        if i < depth:
            layers.append(ACTIVATIONS[activation]())
    net = nn.Sequential(*layers)
    return net.to(device) if device is not None else net


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    r"""The timestep features e(t) = [cos(t ω_1), …, cos(t ω_{dim/2}), sin(t ω_1), …, sin(t ω_{dim/2})].

    ω_k = max_period^{−(k−1)/(dim/2)}, k = 1..dim/2: frequencies from 1 down to ≈ 1/max_period
    (Vaswani et al. 2017; Ho et al. 2020), so that nearby timesteps get similar features and
    the network can still tell them apart. Chapter 7 feeds them to :class:`TimeConditionedMLP`.

    Args:
        t: ``(B,)`` timesteps (integers 1..T, any dtype).
        dim: even number of features.
        max_period: the slowest period, ``> 1``.

    Returns:
        ``(B, dim)`` float32 features (float64 if ``t`` is float64), on ``t``'s device.
    """
    if not isinstance(t, torch.Tensor) or t.dim() != 1:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"t must be a tensor of shape (B,) holding timesteps; got {got}")
    dim = check_int(dim, "dim", low=1)
    if dim % 2:
        raise ValueError(f"dim must be even (a cosine and a sine per frequency); got {dim}")
    max_period = check_number(max_period, "max_period", low=1, closed_low=False)
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=dtype, device=t.device) / half)
    angles = t.to(dtype).unsqueeze(-1) * freqs
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimeConditionedMLP(nn.Module):
    r"""A noise predictor ε_θ(x_t, t) (or ε_θ(x_t, t, y)): an :func:`mlp` on [x_t, e(t), onehot(y)].

    The small denoiser of Chapter 7 for 2-D data and 8×8 digits: the sinusoidal features e(t) of
    :func:`sinusoidal_embedding` and, for a class-conditional model (``num_classes > 0``), a
    one-hot label are concatenated to x_t. Weights are drawn from ``generator``, as in :func:`mlp`.
    Call it as ``model(x_t, t)`` or ``model(x_t, t, y)``; it matches the model interface of
    :mod:`dgm.diffusion` (bind ``y`` with a lambda for a class-conditional model).

    Args:
        dim: data dimension D; the model maps ``(B, D)`` to ``(B, D)``.
        hidden: width of every hidden layer; depth: number of hidden layers.
        num_classes: C > 0 for a class-conditional model, 0 for an unconditional one.
        emb_dim: number of timestep features (even).
        activation: one of ``ACTIVATIONS``.
        generator, dtype, device: as in :func:`mlp`.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, *, num_classes: int = 0, emb_dim: int = 32,
                 activation: str = "silu", generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=0)
        self.emb_dim = check_int(emb_dim, "emb_dim", low=1)
        if self.emb_dim % 2:
            raise ValueError(f"emb_dim must be even; got {emb_dim}")
        self.net = mlp(self.dim + self.emb_dim + self.num_classes, hidden, self.dim, depth, activation,
                       generator=generator, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """ε̂ of shape ``(B, D)`` for ``x`` ``(B, D)``, ``t`` ``(B,)`` and (conditional models) labels ``y`` ``(B,)``."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}); got {tuple(x.shape)}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape (B,) = ({x.shape[0]},); got {tuple(t.shape)}")
        features = [x, sinusoidal_embedding(t, self.emb_dim).to(x.dtype)]
        if self.num_classes:
            if y is None or y.shape != (x.shape[0],):
                got = None if y is None else tuple(y.shape)
                raise ValueError(f"a class-conditional model needs labels y of shape ({x.shape[0]},); got {got}")
            features.append(torch.nn.functional.one_hot(y.long(), self.num_classes).to(x.dtype))
        elif y is not None:
            raise ValueError("this model is unconditional (num_classes = 0); call it without y")
        return self.net(torch.cat(features, dim=-1))
