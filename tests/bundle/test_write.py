"""Writing and updating bundles: atomic placement, engines, interrupted updates."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from helpers.onnx_bundles import make_bundle, tiny_onnx, tiny_spec
from medfuse.bundle import (
    Bundle,
    EngineRecord,
    Provenance,
    VariantSource,
    open_bundle,
    sha256_file,
    update_bundle,
    write_bundle,
)
from medfuse.errors import BundleError, ManifestError


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".*tmp-*")) + sorted(
        p.name for p in directory.glob(".*old-*")
    )


def _engine(key: str, variant: str = "fp32", **kw: Any) -> EngineRecord:
    return EngineRecord(
        key=key,
        variant=variant,
        tensorrt_version="10.3.0",
        gpu_name="Orin",
        compute_capability="8.7",
        **kw,
    )


def test_write_refuses_an_existing_bundle_unless_overwrite(bundle: Bundle, tmp_path: Path) -> None:
    before = (bundle.path / "manifest.json").read_bytes()
    src = tiny_onnx(tmp_path / "other.onnx", scale=2.0)
    kwargs = {
        "spec": tiny_spec(),
        "variants": {"fp32": VariantSource(src)},
        "provenance": Provenance(),
    }
    with pytest.raises(BundleError, match="already exists; pass overwrite=True"):
        write_bundle(bundle.path, **kwargs)  # type: ignore[arg-type]
    assert (bundle.path / "manifest.json").read_bytes() == before
    again = write_bundle(bundle.path, overwrite=True, **kwargs)  # type: ignore[arg-type]
    assert again.manifest.variants["fp32"].sha256 == sha256_file(src)
    assert set(again.manifest.artifacts) == {"model.fp32.onnx"}
    assert not (bundle.path / "golden.npz").exists()
    assert _leftovers(tmp_path) == []


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    good = tiny_onnx(tmp_path / "m.onnx")
    unreadable = tmp_path / "a-directory"
    unreadable.mkdir()
    with pytest.raises(BundleError, match=r"files\['golden.npz'\]"):
        write_bundle(
            tmp_path / "x.medfuse",
            spec=tiny_spec(),
            variants={"fp32": VariantSource(good)},
            files={"golden.npz": unreadable},
            provenance=Provenance(),
        )
    assert not (tmp_path / "x.medfuse").exists()
    assert _leftovers(tmp_path) == []


def test_write_rejects_bad_names(tmp_path: Path) -> None:
    good = tiny_onnx(tmp_path / "m.onnx")
    with pytest.raises(ManifestError, match="not a precision"):
        write_bundle(
            tmp_path / "a.medfuse",
            spec=tiny_spec(),
            variants={"double": VariantSource(good)},
            provenance=Provenance(),
        )
    with pytest.raises(ManifestError, match="not allowed"):
        write_bundle(
            tmp_path / "b.medfuse",
            spec=tiny_spec(),
            variants={"fp32": VariantSource(good)},
            files={"../x": good},
            provenance=Provenance(),
        )
    with pytest.raises(BundleError, match="at least one variant"):
        write_bundle(tmp_path / "c.medfuse", spec=tiny_spec(), variants={}, provenance=Provenance())


def test_add_variant_and_files(bundle: Bundle, tmp_path: Path) -> None:
    int8 = tiny_onnx(tmp_path / "int8.onnx", scale=0.5)
    report = tmp_path / "quant.json"
    report.write_text(json.dumps({"agreement": 0.99}))
    calib = {"method": "minmax", "studies": 16, "set_sha256": "cd" * 32}
    updated = update_bundle(
        bundle,
        add_variants={"int8": VariantSource(int8, accuracy={"agreement": 0.99}, calibration=calib)},
        add_files={"reports/quantization.json": report},
    )
    assert updated.precisions == ("fp32", "int8")
    reopened = open_bundle(bundle.path)
    assert reopened.manifest == updated.manifest
    v = reopened.manifest.variants["int8"]
    assert (v.file, v.sha256, dict(v.calibration or {})) == (
        "model.int8.onnx",
        sha256_file(int8),
        calib,
    )
    assert reopened.verify().ok
    assert _leftovers(bundle.path) == []


def test_unreadable_source_is_refused_before_anything_changes(
    bundle: Bundle, tmp_path: Path
) -> None:
    manifest_before = (bundle.path / "manifest.json").read_bytes()
    new_golden = tmp_path / "new-golden.npz"
    new_golden.write_bytes(b"replacement golden vectors")
    unreadable = tmp_path / "not-a-file"
    unreadable.mkdir()
    with pytest.raises(BundleError, match=r"files\['reports/broken.json'\].*not a readable file"):
        update_bundle(
            bundle, add_files={"golden.npz": new_golden, "reports/broken.json": unreadable}
        )
    assert (bundle.path / "manifest.json").read_bytes() == manifest_before
    assert open_bundle(bundle.path).verify().ok


def test_interrupted_update_leaves_the_previous_bundle_valid(
    bundle: Bundle, tmp_path: Path
) -> None:
    """Two copies succeed, the third fails while reading; nothing of the update remains."""
    broken = Path("/proc/self/mem")  # a file that opens but whose first read fails (EIO)
    if not broken.is_file():
        pytest.skip("needs Linux /proc/self/mem")
    manifest_before = (bundle.path / "manifest.json").read_bytes()
    golden_before = (bundle.path / "golden.npz").read_bytes()
    new_golden = tmp_path / "new-golden.npz"
    new_golden.write_bytes(b"replacement golden vectors")
    new_report = tmp_path / "new-report.json"
    new_report.write_text("{}")
    with pytest.raises(BundleError, match=r"cannot copy reports/broken.json .*unchanged"):
        update_bundle(
            bundle,
            add_files={
                "golden.npz": new_golden,
                "reports/new.json": new_report,
                "reports/broken.json": broken,
            },
        )
    assert (bundle.path / "manifest.json").read_bytes() == manifest_before
    assert (bundle.path / "golden.npz").read_bytes() == golden_before
    assert not (bundle.path / "reports" / "new.json").exists()
    assert _leftovers(bundle.path) == []
    assert open_bundle(bundle.path).verify().ok


def test_engines_with_different_keys_coexist(bundle: Bundle, tmp_path: Path) -> None:
    plan_a = tmp_path / "a.plan"
    plan_a.write_bytes(b"plan for orin")
    plan_b = tmp_path / "b.plan"
    plan_b.write_bytes(b"plan for h100")
    b1 = update_bundle(
        bundle,
        add_engines={
            "orin-sm87-trt10.3-fp32": (
                _engine("orin-sm87-trt10.3-fp32", jetpack="6.2", dla_core=None),
                plan_a,
            )
        },
    )
    b2 = update_bundle(
        b1,
        add_engines={
            "h100-sm90-trt11.4-fp32": (
                EngineRecord(
                    key="h100-sm90-trt11.4-fp32",
                    variant="fp32",
                    tensorrt_version="11.4.0",
                    gpu_name="NVIDIA H100",
                    compute_capability="9.0",
                    version_compatible=True,
                ),
                plan_b,
            )
        },
    )
    engines = open_bundle(bundle.path).manifest.engines
    assert set(engines) == {"orin-sm87-trt10.3-fp32", "h100-sm90-trt11.4-fp32"}
    assert engines["orin-sm87-trt10.3-fp32"].file == "engines/orin-sm87-trt10.3-fp32.plan"
    assert engines["orin-sm87-trt10.3-fp32"].sha256 == sha256_file(plan_a)
    assert b2.engine_file("h100-sm90-trt11.4-fp32").read_bytes() == b"plan for h100"
    assert b2.engine_file("orin-sm87-trt10.3-fp32").read_bytes() == b"plan for orin"
    assert b2.verify().ok


def test_engine_must_name_an_existing_variant(bundle: Bundle, tmp_path: Path) -> None:
    plan = tmp_path / "p.plan"
    plan.write_bytes(b"x")
    with pytest.raises(BundleError, match="variant 'int8', which this bundle does not have"):
        update_bundle(bundle, add_engines={"k": (_engine("k", variant="int8"), plan)})
    with pytest.raises(BundleError, match="record's key is 'other'"):
        update_bundle(bundle, add_engines={"k": (_engine("other"), plan)})


def test_removing_a_variant_drops_its_file_and_engines(bundle: Bundle, tmp_path: Path) -> None:
    fp16 = tiny_onnx(tmp_path / "fp16.onnx", scale=3.0)
    plan = tmp_path / "p.plan"
    plan.write_bytes(b"fp16 plan")
    b = update_bundle(bundle, add_variants={"fp16": VariantSource(fp16)})
    b = update_bundle(
        b,
        add_engines={"k16": (_engine("k16", variant="fp16"), plan), "k32": (_engine("k32"), plan)},
    )
    b = update_bundle(b, remove_variants=["fp16"])
    assert b.precisions == ("fp32",)
    assert set(b.manifest.engines) == {"k32"}
    assert not (b.path / "model.fp16.onnx").exists()
    assert not (b.path / "engines" / "k16.plan").exists()
    assert "model.fp16.onnx" not in b.manifest.artifacts
    assert open_bundle(b.path).verify().ok
    with pytest.raises(BundleError, match="at least one variant"):
        update_bundle(b, remove_variants=["fp32"])


def test_replacing_a_variant_drops_its_stale_engines(bundle: Bundle, tmp_path: Path) -> None:
    plan = tmp_path / "p.plan"
    plan.write_bytes(b"plan")
    b = update_bundle(bundle, add_engines={"k32": (_engine("k32"), plan)})
    b = update_bundle(
        b, add_variants={"fp32": VariantSource(tiny_onnx(tmp_path / "n.onnx", scale=9.0))}
    )
    assert b.manifest.engines == {}
    assert not (b.path / "engines" / "k32.plan").exists()
    assert open_bundle(b.path).verify().ok


def test_unknown_fields_survive_an_update(bundle: Bundle, tmp_path: Path) -> None:
    path = bundle.path / "manifest.json"
    doc = json.loads(path.read_text())
    doc["future_field"] = {"x": 1}
    doc["variants"]["fp32"]["future_variant_field"] = [1, "two"]
    doc["provenance"]["future_provenance_field"] = "kept"
    path.write_text(json.dumps(doc))
    report = tmp_path / "r.json"
    report.write_text("{}")
    update_bundle(open_bundle(bundle.path), add_files={"reports/r.json": report})
    after = json.loads(path.read_text())
    assert after["future_field"] == {"x": 1}
    assert after["variants"]["fp32"]["future_variant_field"] == [1, "two"]
    assert after["provenance"]["future_provenance_field"] == "kept"
    assert "reports/r.json" in after["artifacts"]


def test_update_refuses_files_that_belong_to_variants(bundle: Bundle, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="use add_variants / add_engines"):
        update_bundle(bundle, add_files={"model.fp32.onnx": tiny_onnx(tmp_path / "m.onnx")})


def test_zip_bundles_are_read_only(tmp_path: Path) -> None:
    b = make_bundle(tmp_path)
    zpath = tmp_path / "t.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in b.path.rglob("*"):
            if f.is_file():
                zf.write(f, f.relative_to(b.path).as_posix())
    report = tmp_path / "r.json"
    report.write_text("{}")
    with pytest.raises(BundleError, match="read-only"):
        update_bundle(open_bundle(zpath), add_files={"reports/r.json": report})
