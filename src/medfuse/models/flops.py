"""Cost of a network: parameter count and multiply–accumulates of its conv and linear layers.

FLOPs here follow the convention of torchvision's model tables and fvcore: one
multiply–accumulate counts as one FLOP (ResNet-18 at 224×224 ≈ 1.8 GFLOPs). Only
convolutions and linear layers are counted (they dominate; normalisation, pooling and
attention's small matmuls are left out).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["count_flops", "count_parameters"]


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def _conv_macs(m: nn.modules.conv._ConvNd, out: Tensor) -> int:
    kernel = 1
    for k in m.kernel_size:
        kernel *= int(k)
    per_output = kernel * (m.in_channels // m.groups)
    return int(out.numel()) * per_output


def count_flops(module: nn.Module, inputs: Mapping[str, Tensor]) -> int:
    """Multiply–accumulates of one forward pass of ``module`` on ``inputs`` (batch included).

    Parameters
    ----------
    module:
        Any network; forward hooks on its ``Conv1d/2d/3d`` and ``Linear`` layers do the count.
    inputs:
        Keyword arguments of ``module.forward``; divide the result by the batch size for a
        per-sample figure.

    Returns
    -------
    int
        Multiply–accumulates (one per weight use) of the conv and linear layers.
    """
    total = 0

    def hook(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.modules.conv._ConvNd):
            total += _conv_macs(m, out)
        elif isinstance(m, nn.Linear):
            total += int(out.numel()) * m.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, nn.modules.conv._ConvNd | nn.Linear)
    ]
    try:
        with torch.no_grad():
            module(**inputs)
    finally:
        for h in handles:
            h.remove()
    return total
