"""`medfuse export` from a torch.export archive, a TorchScript file and module:factory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medfuse.errors import UsageError
from medfuse.export import export_bundle, load_model, load_spec
from medfuse.export.sources import parse_factory_args

ROOT = Path(__file__).resolve().parents[2]
XRAY_SPEC = ROOT / "docs" / "examples" / "xray-resnet.json"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}")
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=cwd,
    )


def _net() -> torch.nn.Module:
    from helpers.byom_nets import resnet_xray

    return resnet_xray(size=128, width=4)


def test_torch_export_archive_exports_through_the_cli(tmp_path: Path) -> None:
    net = _net()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(net, (torch.randn(2, 3, 128, 128),), dynamic_shapes=({0: batch},))
    archive = tmp_path / "xray.pt2"
    torch.export.save(program, str(archive))
    out = tmp_path / "xray.medfuse"
    proc = _cli("export", str(archive), "--spec", str(XRAY_SPEC), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["parity"]["ok"] is True
    source = json.loads((out / "reports" / "source.json").read_text())
    assert source["kind"] == "torch.export"
    manifest = json.loads((out / "manifest.json").read_text())
    xray = manifest["model"]["inputs"][0]
    assert xray["shape"] == ["batch", 3, 128, 128]
    assert xray["preprocessing"]["replicate"] == 3


def test_torchscript_file_exports_through_the_api(tmp_path: Path) -> None:
    scripted = torch.jit.trace(_net(), torch.randn(2, 3, 128, 128))
    path = tmp_path / "xray.ts"
    torch.jit.save(scripted, str(path))
    loaded = load_model(str(path))
    assert loaded.kind == "torchscript"
    bundle = export_bundle(loaded.module, load_spec(XRAY_SPEC), tmp_path / "ts.medfuse")
    parity = json.loads((bundle.path / "reports" / "export_parity.json").read_text())
    assert parity["ok"] is True


def test_factory_needs_a_spec_and_reports_what_is_wrong(tmp_path: Path) -> None:
    proc = _cli("export", "helpers.byom_nets:resnet_xray", "--out", str(tmp_path / "x.medfuse"))
    assert proc.returncode == 2
    assert "needs a spec file" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli(
        "export",
        "helpers.byom_nets:no_such",
        "--spec",
        str(XRAY_SPEC),
        "--out",
        str(tmp_path / "y"),
    )
    assert proc.returncode == 2 and "has no attribute 'no_such'" in proc.stderr
    proc = _cli("export", "missing.pt2", "--spec", str(XRAY_SPEC), "--out", str(tmp_path / "z"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_factory_args_are_json_when_they_can_be() -> None:
    assert parse_factory_args(["width=4", "name=abc", "flag=true"]) == {
        "width": 4,
        "name": "abc",
        "flag": True,
    }
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_factory_args(["4"])


def test_factory_with_arguments_loads(tmp_path: Path) -> None:
    loaded = load_model("helpers.byom_nets:resnet_xray", {"width": 4})
    assert loaded.kind == "factory"
    assert loaded.extra["factory_args"] == {"width": 4}
    assert loaded.module.conv1.out_channels == 4


def test_a_factory_in_the_current_folder_loads_and_leaves_sys_path_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``python -m`` would find it; the current folder is on the path for that import only
    (a later import must not pick up whatever lies in the folder the export ran in)."""
    (tmp_path / "cwd_nets_probe.py").write_text(
        "import torch\ndef build(width=2):\n    return torch.nn.Linear(3, width)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    before = list(sys.path)
    loaded = load_model("cwd_nets_probe:build", {"width": 5})
    assert loaded.module.out_features == 5
    assert sys.path == before
    sys.modules.pop("cwd_nets_probe", None)
