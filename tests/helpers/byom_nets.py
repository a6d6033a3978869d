"""Bring-your-own-model networks for the export tests and the guide (docs/guide-byom.md).

torchvision's registry wheel is a CUDA build that does not import beside CPU torch (its
``torchvision::nms`` operator is missing), so the 2-D classifier is torchvision's ResNet
(BasicBlock) built here from its layer definitions, at small widths for CI. The 3-D CT
classifier is MONAI's own ``DenseNet`` (MONAI is a dev extra). BatchNorm running statistics
are settled on random inputs (cumulative average in train mode) so outputs are not degenerate.

Factories are importable as ``helpers.byom_nets:resnet_xray`` etc. (``tests/`` on PYTHONPATH).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "late_fusion",
    "monai_densenet_ct",
    "resnet_xray",
    "settle_batchnorm",
    "zero_head_xray",
]


def settle_batchnorm(
    module: nn.Module, example: tuple[torch.Tensor, ...], steps: int = 4
) -> nn.Module:
    """Set every BatchNorm's running stats from ``steps`` forward passes, then eval mode."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    module.train()
    with torch.no_grad():
        for _ in range(steps):
            module(*example)
    return module.eval()


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.ResNet with BasicBlock (``layers=(2, 2, 2, 2)`` is ResNet-18)."""

    def __init__(
        self, layers: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 2, width: int = 64
    ) -> None:
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        for i, blocks in enumerate(layers):
            planes = width * 2**i
            stages.append(self._make_layer(planes, blocks, 1 if i == 0 else 2))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 2 ** (len(layers) - 1), num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(self.inplanes, planes, stride)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet_xray(size: int = 128, width: int = 8, seed: int = 0) -> nn.Module:
    """A ResNet-18-layout X-ray classifier (3 input channels, 2 classes) at ``width``."""
    torch.manual_seed(seed)
    net = ResNet((2, 2, 2, 2), num_classes=2, width=width)
    return settle_batchnorm(net, (torch.randn(8, 3, size, size),))


def zero_head_xray(size: int = 128, width: int = 8) -> nn.Module:
    """:func:`resnet_xray` with a zero-initialised head (as ViT's): every output is 0."""
    net = resnet_xray(size, width)
    assert isinstance(net, ResNet)
    nn.init.zeros_(net.fc.weight)
    nn.init.zeros_(net.fc.bias)
    return net


def monai_densenet_ct(
    depth: int = 32, size: int = 64, channels: int = 2, seed: int = 0, full: bool = False
) -> nn.Module:
    """MONAI's DenseNet (3-D): DenseNet-121's layout at small widths, or MONAI's own
    ``DenseNet121`` with ``full=True`` (the benchmark's size)."""
    from monai.networks.nets import DenseNet, DenseNet121

    torch.manual_seed(seed)
    if full:
        net: nn.Module = DenseNet121(spatial_dims=3, in_channels=channels, out_channels=2)
    else:
        net = DenseNet(
            spatial_dims=3,
            in_channels=channels,
            out_channels=2,
            init_features=8,
            growth_rate=8,
            block_config=(2, 2, 2),
            bn_size=2,
        )
    return settle_batchnorm(net, (torch.randn(4, channels, depth, size, size),))


class LateFusion(nn.Module):
    """CT encoder + X-ray encoder + age, fused after pooling, masked by presence."""

    def __init__(self, ct_channels: int = 2, width: int = 8) -> None:
        super().__init__()
        self.ct = nn.Sequential(
            nn.Conv3d(ct_channels, width, 3, 2, 1),
            nn.BatchNorm3d(width),
            nn.ReLU(),
            nn.Conv3d(width, 2 * width, 3, 2, 1),
            nn.BatchNorm3d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )
        self.xr = nn.Sequential(
            nn.Conv2d(1, width, 3, 2, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * width + 1, 2)

    def forward(
        self, ct: torch.Tensor, xray: torch.Tensor, age: torch.Tensor, presence: torch.Tensor
    ) -> torch.Tensor:
        f_ct = self.ct(ct) * presence[:, 0:1]
        f_xr = self.xr(xray) * presence[:, 1:2]
        return self.head(torch.cat([f_ct, f_xr, age], dim=1))


def late_fusion(depth: int = 32, size: int = 64, xray: int = 128, seed: int = 0) -> nn.Module:
    """A two-modality (CT + X-ray) late-fusion classifier that also takes the patient's age."""
    torch.manual_seed(seed)
    net = LateFusion()
    example: Any = (
        torch.randn(4, 2, depth, size, size),
        torch.randn(4, 1, xray, xray),
        torch.randn(4, 1),
        torch.ones(4, 2),
    )
    return settle_batchnorm(net, example)


class TinySegmenter(nn.Module):
    """A 3-D two-class segmenter whose 'organ' logit follows the CT intensity (not degenerate)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[1, 0, 1, 1, 1] = 4.0
            self.conv.bias.copy_(torch.tensor([0.0, -0.5]))

    def forward(self, ct: torch.Tensor) -> torch.Tensor:
        return self.conv(ct)


def tiny_segmenter() -> nn.Module:
    """:class:`TinySegmenter` in eval mode."""
    return TinySegmenter().eval()


class _NeedsMissingPackage(nn.Module):
    """Imports a package that is not installed when it runs (as SwinUNETR without einops)."""

    def forward(self, xray: torch.Tensor) -> torch.Tensor:
        import medfuse_no_such_package  # type: ignore[import-not-found]  # noqa: F401

        return xray.mean(dim=(2, 3))


def needs_missing_package() -> nn.Module:
    """A model whose export fails for a known reason (a missing package)."""
    return _NeedsMissingPackage()


class _DataDependent(nn.Module):
    """Branches on a tensor's value: torch.export refuses, the TorchScript tracer records one path."""

    def forward(self, xray: torch.Tensor) -> torch.Tensor:
        pooled = xray.mean(dim=(2, 3))
        if pooled.sum() > 0:
            return torch.cat([pooled, -pooled], dim=1)
        return torch.cat([-pooled, pooled], dim=1)


def data_dependent() -> nn.Module:
    """A model with data-dependent control flow."""
    return _DataDependent()
