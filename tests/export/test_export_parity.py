"""Parity: ONNX Runtime against PyTorch, per output, with the numbers in the report and error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

from medfuse.errors import ExportError  # noqa: E402
from medfuse.export import check_parity, export_onnx, random_inputs  # noqa: E402


@pytest.fixture
def exported_tiny(tiny, tmp_path: Path):
    module, spec = tiny
    return module, spec, export_onnx(module, spec, tmp_path / "tiny.onnx").path


def test_parity_report_for_a_faithful_export(exported_tiny) -> None:
    module, spec, path = exported_tiny
    report = check_parity(
        module, spec, path, [("random", random_inputs(spec, 1)), ("random", random_inputs(spec, 3))]
    )
    assert report.ok and [c.batch for c in report.cases] == [1, 3]
    assert report.worst["logits"] <= 1e-4
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["cases"][0]["outputs"][0]["name"] == "logits"


def test_corrupted_initializer_raises_with_numbers(exported_tiny, tmp_path: Path) -> None:
    module, spec, path = exported_tiny
    model = onnx.load(str(path))
    weights = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    corrupted = numpy_helper.to_array(weights) + np.float32(0.05)
    weights.CopyFrom(numpy_helper.from_array(corrupted.astype(np.float32), weights.name))
    bad = tmp_path / "corrupted.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ExportError) as info:
        check_parity(module, spec, bad, [("random", random_inputs(spec, 2))])
    message = str(info.value)
    assert "logits" in message and "relative error" in message
    numbers = [float(x) for x in re.findall(r"relative error (\d\.\d+e[-+]\d+)", message)]
    assert numbers and numbers[0] > 1e-4


def test_report_only_mode_does_not_raise(exported_tiny, tmp_path: Path) -> None:
    module, spec, path = exported_tiny

    class Shifted(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return module(image) + 1.0

    report = check_parity(
        Shifted(), spec, path, [("random", random_inputs(spec, 2))], raise_on_failure=False
    )
    assert not report.ok and report.worst["logits"] > 0.1


def test_non_finite_output_fails(exported_tiny) -> None:
    module, spec, path = exported_tiny
    inputs = random_inputs(spec, 1)
    inputs["image"][0, 0, 0, 0] = np.nan
    with pytest.raises(ExportError, match="non-finite"):
        check_parity(module, spec, path, [("nan", inputs)])


def test_inputs_not_fitting_the_spec(exported_tiny) -> None:
    module, spec, path = exported_tiny
    with pytest.raises(ExportError, match=r"'batch', 1, 32, 32"):
        check_parity(module, spec, path, [("bad", {"image": np.zeros((1, 1, 16, 16), np.float32)})])
