"""Triton model-repository export: configs parsed back and compared with the manifest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import fixtures, serve_python

from medfuse.bundle import EngineRecord, open_bundle, update_bundle
from medfuse.errors import UsageError
from medfuse.serving.pbtxt import Enum, first, format_pbtxt, parse_pbtxt
from medfuse.serving.triton_repo import TritonExportOptions, export_triton_repository

DTYPE = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    return Path(fixtures.tiny_reference_bundle(tmp_path_factory.mktemp("b")))


def _config(repo: Path, model: str) -> dict[str, list[Any]]:
    return parse_pbtxt((repo / model / "config.pbtxt").read_text())


def _check_io(
    tensors: list[dict[str, list[Any]]], expected: list[tuple[str, str, list[int]]]
) -> None:
    got = [(first(t, "name"), first(t, "data_type").name, t["dims"]) for t in tensors]
    assert got == expected


def test_onnxruntime_config_matches_the_manifest(bundle: Path, tmp_path: Path) -> None:
    options = TritonExportOptions(
        max_batch=16, instances=2, preferred_batch=(4, 8), max_queue_delay_us=500
    )
    repo = export_triton_repository(bundle, tmp_path / "repo", options)
    spec = open_bundle(bundle).spec
    cfg = _config(repo.path, spec.name)
    assert first(cfg, "name") == spec.name and first(cfg, "backend") == "onnxruntime"
    assert first(cfg, "max_batch_size") == 16
    _check_io(cfg["input"], [(i.name, DTYPE[i.dtype], list(i.shape[1:])) for i in spec.inputs])
    _check_io(cfg["output"], [(o.name, "TYPE_FP32", list(o.shape[1:])) for o in spec.outputs])
    batching = first(cfg, "dynamic_batching")
    assert batching["preferred_batch_size"] == [4, 8]
    assert first(batching, "max_queue_delay_microseconds") == 500
    assert first(first(cfg, "instance_group"), "count") == 2
    onnx = repo.path / spec.name / "1" / "model.onnx"
    assert onnx.read_bytes() == open_bundle(bundle).variant_file("fp32").read_bytes()


def test_ensemble_chains_preprocess_and_model(bundle: Path, tmp_path: Path) -> None:
    repo = export_triton_repository(bundle, tmp_path / "repo")
    spec = open_bundle(bundle).spec
    ens = _config(repo.path, repo.ensemble)
    assert first(ens, "platform") == "ensemble"
    _check_io(ens["input"], [("study", "TYPE_STRING", [1])])
    steps = first(ens, "ensemble_scheduling")["step"]
    pre, net = steps
    assert first(pre, "model_name") == repo.preprocess and first(net, "model_name") == spec.name
    pre_out = {first(m, "key"): first(m, "value") for m in pre["output_map"]}
    net_in = {first(m, "key"): first(m, "value") for m in net["input_map"]}
    assert set(pre_out) == set(net_in) == {i.name for i in spec.inputs}
    assert all(pre_out[k] == net_in[k] for k in pre_out)  # every tensor wired through
    assert {first(m, "value") for m in net["output_map"]} == {o.name for o in spec.outputs}
    prep = _config(repo.path, repo.preprocess)
    assert first(prep, "backend") == "python"
    _check_io(prep["output"], [(i.name, DTYPE[i.dtype], list(i.shape[1:])) for i in spec.inputs])
    version = repo.path / repo.preprocess / "1"
    assert (version / "model.py").is_file()
    assert json.loads((version / "model_spec.json").read_text()) == spec.to_dict()
    assert "tritonserver --model-repository" in (repo.path / "README.md").read_text()


def _with_engines(bundle: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "b.medfuse"
    shutil.copytree(bundle, copy)
    engines = {}
    for i, (cc, gpu, when, top) in enumerate(
        [
            ("8.7", "Orin", "2026-01-01T00:00:00+00:00", 8),
            ("9.0", "H100", "2026-01-01T00:00:00+00:00", 4),
            ("9.0", "H100", "2026-02-01T00:00:00+00:00", 16),
        ]
    ):
        plan = tmp_path / f"p{i}.plan"
        plan.write_bytes(f"plan {i}".encode())
        shapes = {"min": [1, 3], "opt": [top, 3], "max": [top, 3]}
        record = EngineRecord(
            key=f"fp32-k{i}",
            variant="fp32",
            tensorrt_version="10.13.0",
            gpu_name=gpu,
            compute_capability=cc,
            profile={"batch_sizes": [1, top], "profiles": [{"presence": shapes}]},
            built_at=when,
        )
        engines[record.key] = (record, plan)
    update_bundle(open_bundle(copy), add_engines=engines)
    return copy


def test_tensorrt_config_maps_compute_capability_to_plans(bundle: Path, tmp_path: Path) -> None:
    with_engines = _with_engines(bundle, tmp_path)
    repo = export_triton_repository(
        with_engines, tmp_path / "repo", TritonExportOptions(max_batch=16)
    )
    assert repo.backend == "tensorrt"
    cfg = _config(repo.path, repo.model)
    assert first(cfg, "platform") == "tensorrt_plan"
    assert first(first(cfg, "instance_group"), "kind") == Enum("KIND_GPU")
    cc = {first(m, "key"): first(m, "value") for m in cfg["cc_model_filenames"]}
    assert cc == {"8.7": "model.sm87.plan", "9.0": "model.sm90.plan"}
    version = repo.path / repo.model / "1"
    assert (version / "model.sm87.plan").read_bytes() == b"plan 0"
    assert (version / "model.sm90.plan").read_bytes() == b"plan 2"  # the newest 9.0 build
    assert first(cfg, "max_batch_size") == 8  # capped by the Orin engine's profile


def test_tensorrt_without_engines_is_refused(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="medfuse build"):
        export_triton_repository(bundle, tmp_path / "r", TritonExportOptions(backend="tensorrt"))


def test_non_empty_output_is_refused(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        export_triton_repository(bundle, tmp_path / "r")


def test_pbtxt_round_trip() -> None:
    config = {
        "name": 'a "quoted" name',
        "max_batch_size": 4,
        "flag": True,
        "dims": [1, 2],
        "kind": Enum("KIND_CPU"),
        "sub": {"x": 1.5},
        "items": [{"key": "k", "value": "v"}, {"key": "k2", "value": "v2"}],
    }
    parsed = parse_pbtxt("# comment\n" + format_pbtxt(config))
    assert first(parsed, "name") == 'a "quoted" name'
    assert parsed["dims"] == [1, 2] and first(parsed, "flag") is True
    assert first(parsed, "kind") == Enum("KIND_CPU")
    assert first(first(parsed, "sub"), "x") == 1.5
    assert [first(i, "key") for i in parsed["items"]] == ["k", "k2"]


def test_configs_parse_as_tritons_model_config(bundle: Path, tmp_path: Path) -> None:
    """Triton's own ModelConfig proto (from tritonclient, in the serve Python) accepts them."""
    python = serve_python()
    if python is None:
        pytest.skip("tritonclient's model_config proto lives in the serve Python (see .ci/run)")
    repos = [
        export_triton_repository(bundle, tmp_path / "onnx").path,
        export_triton_repository(_with_engines(bundle, tmp_path), tmp_path / "trt").path,
    ]
    script = (
        "import sys, glob\n"
        "from google.protobuf import text_format\n"
        "from tritonclient.grpc import model_config_pb2 as pb\n"
        "for root in sys.argv[1:]:\n"
        "    for p in sorted(glob.glob(root + '/*/config.pbtxt')):\n"
        "        m = text_format.Parse(open(p).read(), pb.ModelConfig())\n"
        "        print(m.name, m.max_batch_size, len(m.input), len(m.output), dict(m.cc_model_filenames))\n"
    )
    out = subprocess.run(
        [python, "-c", script, *map(str, repos)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 6
    assert any("'9.0': 'model.sm90.plan'" in line for line in lines)
