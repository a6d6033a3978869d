"""``medfuse inspect``: the real CLI in a subprocess, on a bundle written by write_bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.onnx_bundles import make_bundle
from medfuse.bundle import Bundle


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    return make_bundle(tmp_path)


def _inspect(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDFUSE_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", "inspect", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_json_summary(bundle: Bundle, tmp_path: Path) -> None:
    out = _inspect(str(bundle.path), "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["path"] == str(bundle.path.resolve())
    assert (doc["name"], doc["version"], doc["schema_version"]) == ("tiny-fusion", "0.0.1", 1)
    assert [i["name"] for i in doc["inputs"]] == ["ct", "presence"]
    assert doc["inputs"][0]["preprocessing"]["geometry"] == "volume"
    assert [o["name"] for o in doc["outputs"]] == ["diagnosis", "severity"]
    fp32 = doc["variants"]["fp32"]
    assert fp32["file"] == "model.fp32.onnx"
    assert fp32["sha256"] == bundle.manifest.variants["fp32"].sha256
    assert fp32["size_bytes"] == (bundle.path / "model.fp32.onnx").stat().st_size
    assert doc["engines"] == {}
    assert doc["verified"] is True
    assert doc["provenance"]["opset"] == 18


def test_zip_bundle_json(bundle: Bundle, tmp_path: Path) -> None:
    import zipfile

    zpath = tmp_path / "tiny.medfuse.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(bundle.path.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(bundle.path.parent).as_posix())
    out = _inspect(str(zpath), "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["path"] == str(zpath.resolve()) and list(doc["variants"]) == ["fp32"]


def test_table_output(bundle: Bundle, tmp_path: Path) -> None:
    out = _inspect(str(bundle.path), tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    for text in (
        "tiny-fusion",
        "inputs",
        "ct",
        "presence",
        "outputs",
        "diagnosis",
        "severity",
        "variants",
        "fp32",
        "model.fp32.onnx",
        "all files verified",
        "engines: none",
    ):
        assert text in out.stdout, text
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.stdout)


def test_damaged_bundle_exits_1_with_a_clean_message(bundle: Bundle, tmp_path: Path) -> None:
    path = bundle.path / "model.fp32.onnx"
    data = bytearray(path.read_bytes())
    data[50] ^= 0xFF
    path.write_bytes(bytes(data))
    out = _inspect(str(bundle.path), "--json", tmp_path=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "model.fp32.onnx does not match" in out.stderr
    assert "re-copy it or re-export" in out.stderr
    assert out.stdout == ""
    skipped = _inspect(str(bundle.path), "--json", "--no-verify", tmp_path=tmp_path)
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["verified"] is None


def test_bad_manifest_exits_1(bundle: Bundle, tmp_path: Path) -> None:
    manifest = bundle.path / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["variants"]["fp32"]["sha256"] = 42
    manifest.write_text(json.dumps(doc))
    out = _inspect(str(bundle.path), tmp_path=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "variants['fp32'].sha256" in out.stderr


def test_missing_bundle_exits_1(tmp_path: Path) -> None:
    out = _inspect(str(tmp_path / "nope.medfuse"), tmp_path=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "not found" in out.stderr


def test_default_is_the_shipped_bundle(tmp_path: Path) -> None:
    import medfuse

    shipped = Path(medfuse.__file__).parent / "data" / "reference.medfuse" / "manifest.json"
    out = _inspect("--json", tmp_path=tmp_path)
    if shipped.is_file():
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["path"] == str(shipped.parent.resolve())
    else:
        assert out.returncode == 1
        assert "Traceback" not in out.stderr
        assert "reference bundle" in out.stderr and "is not installed" in out.stderr
