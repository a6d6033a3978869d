"""Cost budgets of the named configurations, and the counter against hand-computed values."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from medfuse.models import build_model, count_flops, count_parameters  # noqa: E402


def _per_sample_flops(config: str) -> tuple[int, int]:
    net, spec = build_model(config)
    x = {i.name: torch.zeros(i.batch_shape(1)) for i in spec.inputs}
    return count_flops(net, x), count_parameters(net)


def test_counter_matches_hand_count() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 10 * 10, 5))
    macs = count_flops(net, {"input": torch.zeros(2, 3, 10, 10)})
    conv = 2 * 8 * 10 * 10 * (3 * 3 * 3)  # outputs x (kernel x in-channels)
    linear = 2 * 5 * 800
    assert macs == conv + linear
    assert count_parameters(net) == (8 * 27 + 8) + (800 * 5 + 5)


def test_counter_handles_3d_strided_and_grouped_convs() -> None:
    net = nn.Conv3d(4, 8, kernel_size=3, stride=2, padding=1, groups=2)
    macs = count_flops(net, {"input": torch.zeros(1, 4, 8, 8, 8)})
    assert macs == 8 * 4 * 4 * 4 * (27 * 2)


def test_reference_is_edge_sized() -> None:
    flops, params = _per_sample_flops("reference")
    # 0.3-2 G multiply-accumulates (0.6-4 GFLOPs counting multiply and add), < 3 M parameters
    assert 0.3e9 <= flops <= 2e9, flops
    assert params <= 3_000_000, params


def test_resnet18_config_is_resnet18_class() -> None:
    flops, params = _per_sample_flops("resnet18-224")
    # three ResNet-18 trunks at 224x224 (1.82 G multiply-accumulates each) plus small mixers
    assert 5.0e9 <= flops <= 6.0e9, flops
    assert 30e6 <= params <= 40e6, params
