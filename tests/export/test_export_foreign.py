"""Export works on architectures medfuse did not write: torch's TransformerEncoder and MONAI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from conftest import image_spec  # noqa: E402
from medfuse.bundle import open_bundle  # noqa: E402
from medfuse.export import export_bundle, onnx_outputs  # noqa: E402


class PatchTransformer(nn.Module):
    """A small ViT: conv patch embedding → torch.nn.TransformerEncoder → mean token → head."""

    def __init__(self, classes: int = 3, dim: int = 32) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, dim, kernel_size=8, stride=8)
        layer = nn.TransformerEncoderLayer(
            dim, nhead=4, dim_feedforward=64, batch_first=True, dropout=0.0
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(image).flatten(2).transpose(1, 2)
        return self.head(self.encoder(tokens).mean(dim=1))


def _check(bundle_path: Path) -> None:
    bundle = open_bundle(bundle_path)
    assert bundle.verify().ok
    spec = bundle.manifest.model
    with np.load(bundle.file("golden.npz")) as z:
        got = onnx_outputs(bundle.variant_file("fp32"), spec, {"image": z["image"]})
        np.testing.assert_allclose(got["logits"], z["logits"], rtol=0, atol=1e-4)
    batch3 = {"image": np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)}
    assert onnx_outputs(bundle.variant_file("fp32"), spec, batch3)["logits"].shape == (3, 3)


def test_torch_transformer_encoder_exports(tmp_path: Path) -> None:
    torch.manual_seed(0)
    export_bundle(PatchTransformer().eval(), image_spec("vit-tiny"), tmp_path / "vit.medfuse")
    _check(tmp_path / "vit.medfuse")


def test_monai_densenet_exports(tmp_path: Path) -> None:
    nets = pytest.importorskip("monai.networks.nets")
    torch.manual_seed(0)
    model = nets.DenseNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=3,
        init_features=8,
        growth_rate=8,
        block_config=(2, 2),
    ).eval()
    export_bundle(model, image_spec("monai-densenet"), tmp_path / "densenet.medfuse")
    _check(tmp_path / "densenet.medfuse")
