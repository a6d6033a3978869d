"""torch → ONNX: round trip in ONNX Runtime, dynamic batch, names, the TorchScript fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from medfuse.errors import ExportError  # noqa: E402
from medfuse.export import export_onnx, lint_tensorrt, onnx_outputs, random_inputs  # noqa: E402


def _torch(module, spec, inputs):
    with torch.no_grad():
        out = module(*[torch.from_numpy(inputs[i.name]) for i in spec.inputs])
    return dict(zip([o.name for o in spec.outputs], [o.numpy() for o in out], strict=True))


def test_reference_round_trip_matches_torch(reference_export) -> None:
    module, spec, exported = reference_export
    inputs = random_inputs(spec, 2, seed=11)
    got = onnx_outputs(exported.path, spec, inputs)
    ref = _torch(module, spec, inputs)
    for name in ref:
        err = np.max(np.abs(got[name] - ref[name])) / max(np.max(np.abs(ref[name])), 1e-3)
        assert err <= 1e-4, (name, err)


@pytest.mark.parametrize("batch", [1, 3])
def test_dynamic_batch(reference_export, batch: int) -> None:
    module, spec, exported = reference_export
    inputs = random_inputs(spec, batch, seed=batch)
    got = onnx_outputs(exported.path, spec, inputs)
    assert got["diagnosis"].shape == (batch, 4) and got["severity"].shape == (batch, 1)
    np.testing.assert_allclose(
        got["diagnosis"], _torch(module, spec, inputs)["diagnosis"], rtol=0, atol=1e-4
    )


def test_graph_names_opset_and_symbolic_batch(reference_export) -> None:
    _, _spec, exported = reference_export
    model = onnx.load(str(exported.path))
    assert [v.name for v in model.graph.input] == ["ct", "mr", "xr", "presence"]
    assert [v.name for v in model.graph.output] == ["diagnosis", "severity"]
    assert exported.opset >= 17 and exported.exporter == "dynamo"
    for v in list(model.graph.input) + list(model.graph.output):
        assert v.type.tensor_type.shape.dim[0].dim_param
    onnx.checker.check_model(model, full_check=True)


def test_reference_graph_passes_tensorrt_lint(reference_export) -> None:
    report = lint_tensorrt(reference_export[2].path)
    assert report.ok and not report.warnings, report.to_dict()["findings"]
    assert "BatchNormalization" not in report.op_counts  # folded into the convolutions


def test_torchscript_exporter_path(tiny, tmp_path: Path) -> None:
    module, spec = tiny
    exported = export_onnx(module, spec, tmp_path / "tiny.onnx", dynamo=False)
    assert exported.exporter == "torchscript"
    inputs = random_inputs(spec, 3, seed=0)
    got = onnx_outputs(exported.path, spec, inputs)["logits"]
    with torch.no_grad():
        ref = module(torch.from_numpy(inputs["image"])).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_wrong_output_count_is_export_error(tiny, tmp_path: Path) -> None:
    module, spec = tiny

    class TwoOutputs(torch.nn.Module):
        def forward(self, image: torch.Tensor):
            return module(image), image.mean()

    with pytest.raises(ExportError, match="outputs"):
        export_onnx(TwoOutputs(), spec, tmp_path / "two.onnx")


def test_old_opset_refused(tiny, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="opset 13"):
        export_onnx(tiny[0], tiny[1], tmp_path / "x.onnx", opset=13)
