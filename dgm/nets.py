"""Small neural networks shared by several chapters: a multilayer perceptron builder.

Networks built here are seeded from the caller's ``generator`` so that a chapter, a test and a
grader that pass the same seed start from exactly the same weights (torch's own layer
initialisation draws from the global random state instead).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["mlp", "ACTIVATIONS"]

#: the activations :func:`mlp` accepts by name.
ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}


def _positive_int(value, name: str, *, allow_zero: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    smallest = 0 if allow_zero else 1
    if value < smallest:
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name} must be {kind} integer; got {value}")
    return value


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
    in_dim = _positive_int(in_dim, "in_dim")
    hidden = _positive_int(hidden, "hidden")
    out_dim = _positive_int(out_dim, "out_dim")
    depth = _positive_int(depth, "depth", allow_zero=True)
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
