"""The fusion network: shapes, the presence mask, and the spec it is built with."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medfuse.errors import UsageError  # noqa: E402
from medfuse.models import CONFIGS, build_model, model_spec  # noqa: E402


def _inputs(spec, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {i.name: torch.randn(i.batch_shape(batch), generator=g) for i in spec.image_inputs}
    out["presence"] = torch.ones(batch, 3)
    return out


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return build_model("reference")


@pytest.mark.parametrize("config", CONFIGS)
def test_forward_shapes(config: str) -> None:
    net, spec = build_model(config)
    with torch.no_grad():
        diagnosis, severity = net(**_inputs(spec, 2))
    assert diagnosis.shape == (2, 4)
    assert severity.shape == (2, 1)
    assert [o.shape[1:] for o in spec.outputs] == [(4,), (1,)]


@pytest.mark.parametrize("config", CONFIGS)
def test_forward_takes_spec_inputs_in_order(config: str) -> None:
    net, spec = build_model(config)
    params = list(inspect.signature(net.forward).parameters)
    assert params == [i.name for i in spec.inputs] == ["ct", "mr", "xr", "presence"]


@pytest.mark.parametrize("present", [0, 1, 2])
def test_one_of_three_present_is_finite(reference, present: int) -> None:
    net, spec = reference
    x = _inputs(spec, 3)
    x["presence"] = torch.zeros(3, 3)
    x["presence"][:, present] = 1.0
    with torch.no_grad():
        out = net(**x)
    assert all(torch.isfinite(o).all() for o in out)


def test_no_modality_present_is_still_finite(reference) -> None:
    net, spec = reference
    x = _inputs(spec, 2)
    x["presence"] = torch.zeros(2, 3)
    with torch.no_grad():
        out = net(**x)
    assert all(torch.isfinite(o).all() for o in out)


def test_masked_out_input_does_not_change_output(reference) -> None:
    net, spec = reference
    x = _inputs(spec, 2, seed=1)
    x["presence"] = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    changed = dict(x)
    changed["mr"] = torch.randn_like(x["mr"]) * 50.0
    changed["xr"] = x["xr"].clone()
    changed["xr"][1] = 1e3  # absent in row 1 only
    with torch.no_grad():
        a = net(**x)
        b = net(**changed)
    for ta, tb in zip(a, b, strict=True):
        assert torch.equal(ta, tb)


def test_present_input_does_change_output(reference) -> None:
    net, spec = reference
    x = _inputs(spec, 1, seed=2)
    changed = dict(x)
    changed["mr"] = torch.randn_like(x["mr"])
    with torch.no_grad():
        assert not torch.equal(net(**x)[0], net(**changed)[0])


def test_unknown_config_is_usage_error() -> None:
    with pytest.raises(UsageError, match="reference"):
        model_spec("resnet-9000")


def test_spec_imports_without_torch() -> None:
    code = (
        "import sys\n"
        "from medfuse.models.specs import model_spec\n"
        "s = model_spec('reference')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(s.name, [i.name for i in s.inputs])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "medfuse-reference" in out.stdout


def test_reference_spec_recipes() -> None:
    spec = model_spec("reference")
    ct, mr, xr = spec.image_inputs
    assert ct.shape == ("batch", 2, 32, 64, 64) and ct.modality == "CT" and not ct.required
    assert [(w.center, w.width) for w in ct.preprocessing.intensity.windows] == [
        (40.0, 400.0),
        (500.0, 2000.0),
    ]
    assert ct.preprocessing.selection.min_frames == 8
    assert mr.preprocessing.intensity.percentiles == (1.0, 99.0)
    assert xr.preprocessing.selection.modalities == ("CR", "DX")
    assert xr.preprocessing.intensity.method == "voi"
    assert spec.presence_input is not None and spec.presence_input.shape == ("batch", 3)
    assert spec.output("diagnosis").labels == ("normal", "cyst", "tumor", "calcification")
    assert "log1p" in spec.output("severity").meaning
    assert np.all(np.asarray(ct.preprocessing.intensity.std) > 0)
