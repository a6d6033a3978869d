"""The reference multimodal fusion network: one encoder per modality, masked attention fusion.

Every image input (CT volume, MR volume, X-ray image) goes through its own encoder to a
``dim``-wide embedding. The embeddings become tokens (plus a learned modality embedding); a
learned summary token, always present, attends over them with the keys of absent modalities
masked out by the ``presence`` input. So a study with one modality of three works, an
all-absent row still yields finite numbers (the summary token attends to itself), and an
absent modality's tensor cannot change the output.

The reference encoders are shallow on purpose: average-pool in-plane by 2 (better
signal-to-noise), two 3×3(×3) convolutions at that resolution, and global mean *and max*
pooling of both. Lesions are a few voxels wide at these sizes; deeper, strided encoders
(tried first) memorised each synthetic patient's global appearance and stayed at chance on
held-out studies, while this "is there a small finding like this anywhere" design
generalises. During training each modality's embedding also gets its own diagnosis head
(deep supervision, :meth:`FusionNet.forward_train`); ``forward`` — the exported graph —
does not use them.

Only export-friendly operations are used (Conv, AveragePool, Relu, ReduceMean/ReduceMax,
Gemm/MatMul, Softmax, LayerNormalization, Where, Concat, Reshape, Transpose; the ResNet
configuration adds MaxPool and BatchNormalization folded at export): all are in TensorRT's
ONNX parser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from medfuse.bundle.spec import ModelSpec
from medfuse.errors import UsageError
from medfuse.models.specs import CLASSES, CONFIGS, model_spec

__all__ = ["FusionNet", "MaskedModalityFusion", "build_model"]

# (out_channels, stride) per conv block of the reference encoders
_REFERENCE_VOLUME_STAGES: tuple[tuple[int, tuple[int, int, int]], ...] = (
    (16, (1, 1, 1)),
    (16, (1, 1, 1)),
)
_REFERENCE_IMAGE_STAGES: tuple[tuple[int, int], ...] = (
    (16, 1),
    (16, 1),
)
_REFERENCE_TAPS = (0, 1)  # stages whose mean/max feed the embedding


def _conv_block(dims: int, cin: int, cout: int, stride: Any, norm: bool = True) -> nn.Sequential:
    """3x3(x3) convolution (+ batch norm) + ReLU (``stride``: an int or one per spatial axis)."""
    conv_type = nn.Conv3d if dims == 3 else nn.Conv2d
    conv = conv_type(cin, cout, kernel_size=3, stride=stride, padding=1, bias=not norm)
    if not norm:
        return nn.Sequential(conv, nn.ReLU(inplace=True))
    bn = nn.BatchNorm3d(cout) if dims == 3 else nn.BatchNorm2d(cout)
    return nn.Sequential(conv, bn, nn.ReLU(inplace=True))


class ConvEncoder(nn.Module):
    """Optional average pooling, a conv stack, global mean and max pooling of the stages in
    ``taps`` (and the last) → linear embedding.

    Pooling the maximum of high-resolution features lets the embedding say "somewhere there
    is a small finding like this" — lesions are a few voxels at these sizes — instead of
    memorising each patient's global appearance.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        stages: Sequence[tuple[int, Any]],
        dim: int,
        taps: Sequence[int] = (),
        norm: bool = True,
        pool: Any = None,
    ) -> None:
        super().__init__()
        self.pool: nn.Module = nn.Identity()
        if pool is not None:
            self.pool = nn.AvgPool3d(pool) if dims == 3 else nn.AvgPool2d(pool)
        blocks: list[nn.Module] = []
        cin = in_channels
        widths = []
        for cout, stride in stages:
            blocks.append(_conv_block(dims, cin, cout, stride, norm))
            widths.append(cout)
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.taps = tuple(sorted(set(taps) | {len(blocks) - 1}))
        self.reduce_dims: tuple[int, ...] = tuple(range(2, 2 + dims))
        self.embed = nn.Linear(2 * sum(widths[t] for t in self.taps), dim)

    def forward(self, x: Tensor) -> Tensor:
        pooled: list[Tensor] = []
        x = self.pool(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                pooled += [x.mean(dim=self.reduce_dims), x.amax(dim=self.reduce_dims)]
        out: Tensor = self.embed(torch.cat(pooled, dim=1))
        return out


class _BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs, identity or 1x1 projection shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        out: Tensor = self.relu(h + self.shortcut(x))
        return out


class ResNet18Encoder(nn.Module):
    """ResNet-18 (He et al. 2016) trunk → embedding; volumes enter 2.5-D.

    A volume ``(C, D, H, W)`` is folded to ``C*D`` channels and mixed to three by a 1×1
    convolution, so the trunk is the standard 3-channel ResNet-18 whatever the depth.
    """

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(in_channels, 3, kernel_size=1, bias=False)
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers: list[nn.Module] = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.embed = nn.Linear(cin, dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5:
            x = x.flatten(1, 2)
        h = self.layers(self.stem(self.mix(x)))
        out: Tensor = self.embed(h.mean(dim=(2, 3)))
        return out


class MaskedModalityFusion(nn.Module):
    """A summary token attends over modality tokens; absent modalities are masked out.

    The mask is additive (``-1e4`` on absent keys, representable in FP16) rather than
    ``-inf``, and the summary token is always a valid key, so no softmax row is ever all
    masked and no NaN can appear.
    """

    def __init__(self, dim: int, modalities: int, heads: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise UsageError(f"fusion width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = dim // heads
        self.summary = nn.Parameter(torch.zeros(1, 1, dim))
        self.modality_embedding = nn.Parameter(torch.randn(1, modalities, dim) * 0.02)
        self.norm1 = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.ReLU(inplace=True), nn.Linear(2 * dim, dim)
        )
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor, presence: Tensor) -> Tensor:
        """``tokens`` ``(B, M, dim)``, ``presence`` ``(B, M)`` of 0/1 → fused ``(B, dim)``."""
        present = presence.unsqueeze(-1) > 0.5
        tokens = torch.where(present, tokens + self.modality_embedding, torch.zeros_like(tokens))
        summary = self.summary.expand(tokens.shape[0], -1, -1)
        x = torch.cat([summary, tokens], dim=1)  # (B, 1+M, dim)
        keys_valid = torch.cat(
            [torch.ones_like(presence[:, :1]), (presence > 0.5).to(tokens.dtype)], 1
        )
        bias = (keys_valid - 1.0) * 1e4  # 0 for valid keys, -1e4 for absent ones

        h = self.norm1(x)
        q = self._split(self.query(h[:, :1]))  # (B, H, 1, hd)
        k = self._split(self.key(h))  # (B, H, 1+M, hd)
        v = self._split(self.value(h))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        attn = torch.softmax(scores + bias[:, None, None, :], dim=-1)
        ctx = torch.matmul(attn, v).transpose(1, 2).flatten(2)  # (B, 1, dim)
        s = x[:, 0] + self.proj(ctx[:, 0])
        s = s + self.mlp(self.norm2(s))
        out: Tensor = self.norm_out(s)
        return out

    def _split(self, t: Tensor) -> Tensor:
        return t.reshape(t.shape[0], t.shape[1], self.heads, self.head_dim).transpose(1, 2)


class FusionNet(nn.Module):
    """CT + MR + X-ray fusion network with diagnosis and severity heads.

    ``forward(ct, mr, xr, presence) -> (diagnosis, severity)`` takes the inputs by the spec's
    names in the spec's order; ``presence[:, i]`` is 1.0 when input ``i`` (ct, mr, xr) is
    present. ``diagnosis`` are logits over :data:`~medfuse.models.specs.CLASSES`;
    ``severity`` is ``log1p`` of the lesion burden in mL.
    """

    def __init__(self, ct: nn.Module, mr: nn.Module, xr: nn.Module, dim: int, classes: int) -> None:
        super().__init__()
        self.ct = ct
        self.mr = mr
        self.xr = xr
        self.fusion = MaskedModalityFusion(dim, modalities=3)
        self.diagnosis_head = nn.Linear(dim, classes)
        self.severity_head = nn.Linear(dim, 1)
        self.aux_heads = nn.ModuleList([nn.Linear(dim, classes) for _ in range(3)])

    def forward(
        self, ct: Tensor, mr: Tensor, xr: Tensor, presence: Tensor
    ) -> tuple[Tensor, Tensor]:
        tokens = torch.stack([self.ct(ct), self.mr(mr), self.xr(xr)], dim=1)
        fused = self.fusion(tokens, presence)
        return self.diagnosis_head(fused), self.severity_head(fused)

    def forward_train(
        self, ct: Tensor, mr: Tensor, xr: Tensor, presence: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``forward`` plus per-modality diagnosis logits ``(B, 3, classes)`` for deep
        supervision (training only; not part of the exported graph)."""
        tokens = torch.stack([self.ct(ct), self.mr(mr), self.xr(xr)], dim=1)
        fused = self.fusion(tokens, presence)
        aux = torch.stack([head(tokens[:, i]) for i, head in enumerate(self.aux_heads)], dim=1)
        return self.diagnosis_head(fused), self.severity_head(fused), aux


def build_model(config: str = "reference") -> tuple[nn.Module, ModelSpec]:
    """Build a freshly initialised network of a named configuration and its spec.

    Parameters
    ----------
    config:
        ``"reference"`` (compact; trained and shipped) or ``"resnet18-224"`` (for benchmarks).

    Returns
    -------
    tuple[nn.Module, ModelSpec]
        The network in eval mode (weights from the current torch RNG state) and its spec.

    Raises
    ------
    UsageError
        When ``config`` is unknown.
    """
    spec = model_spec(config)
    channels = {i.name: i.sample_shape()[0] for i in spec.image_inputs}
    net: FusionNet
    if config == "reference":
        dim = 128
        net = FusionNet(
            ct=ConvEncoder(
                3,
                channels["ct"],
                _REFERENCE_VOLUME_STAGES,
                dim,
                _REFERENCE_TAPS,
                norm=False,
                pool=(1, 2, 2),
            ),
            mr=ConvEncoder(
                3,
                channels["mr"],
                _REFERENCE_VOLUME_STAGES,
                dim,
                _REFERENCE_TAPS,
                norm=False,
                pool=(1, 2, 2),
            ),
            xr=ConvEncoder(
                2, channels["xr"], _REFERENCE_IMAGE_STAGES, dim, _REFERENCE_TAPS, norm=False, pool=2
            ),
            dim=dim,
            classes=len(CLASSES),
        )
    elif config == "resnet18-224":
        dim = 256
        depth = {
            i.name: i.sample_shape()[1] if len(i.sample_shape()) == 4 else 1
            for i in spec.image_inputs
        }
        net = FusionNet(
            ct=ResNet18Encoder(channels["ct"] * depth["ct"], dim),
            mr=ResNet18Encoder(channels["mr"] * depth["mr"], dim),
            xr=ResNet18Encoder(channels["xr"], dim),
            dim=dim,
            classes=len(CLASSES),
        )
    else:  # pragma: no cover - model_spec already rejected it
        raise UsageError(f"unknown model configuration {config!r}; known: {', '.join(CONFIGS)}")
    return net.eval(), spec
