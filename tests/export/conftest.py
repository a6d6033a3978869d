"""Shared fixtures for export tests: small specs and modules, one exported reference model."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from medfuse.bundle.spec import (  # noqa: E402
    InputSpec,
    IntensityRecipe,
    ModelSpec,
    OutputSpec,
    PreprocessRecipe,
    SeriesSelection,
)


def image_spec(name: str = "tiny", size: int = 32, classes: int = 3) -> ModelSpec:
    """A one-input ModelSpec: a (1, size, size) X-ray image → logits."""
    recipe = PreprocessRecipe(
        selection=SeriesSelection(modalities=("CR", "DX")),
        geometry="image",
        size=(size, size),
        intensity=IntensityRecipe(method="voi"),
    )
    return ModelSpec(
        name=name,
        version="0.0.1",
        inputs=(
            InputSpec(
                "image",
                ("batch", 1, size, size),
                layout="NCHW",
                modality="CR/DX",
                preprocessing=recipe,
            ),
        ),
        outputs=(
            OutputSpec(
                "logits",
                "class logits",
                ("batch", classes),
                labels=tuple(f"c{i}" for i in range(classes)),
            ),
        ),
    )


class TinyNet(nn.Module):
    """conv → pool → linear, one image input."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.head = nn.Linear(4, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(image)).mean(dim=(2, 3)))


@pytest.fixture
def tiny() -> tuple[nn.Module, ModelSpec]:
    torch.manual_seed(0)
    return TinyNet().eval(), image_spec()


@pytest.fixture(scope="session")
def reference_export(tmp_path_factory: pytest.TempPathFactory):
    """The reference network (random weights) exported once: (module, spec, OnnxExport)."""
    from medfuse.export import export_onnx
    from medfuse.models import build_model

    torch.manual_seed(0)
    module, spec = build_model("reference")
    path: Path = tmp_path_factory.mktemp("export") / "reference.onnx"
    return module, spec, export_onnx(module, spec, path)
