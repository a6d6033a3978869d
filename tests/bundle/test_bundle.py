"""Opening bundles: round trip, sha256 integrity before use, damaged / foreign bundles, zips."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from helpers.onnx_bundles import reference_outputs, tiny_spec
from medfuse.bundle import Bundle, open_bundle, sha256_file
from medfuse.errors import BundleError, IncompatibleBundleError, IntegrityError, ManifestError


def _flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    st = path.stat()  # a different mtime even on coarse-clock file systems
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _edit_manifest(bundle: Bundle, **changes: object) -> None:
    path = bundle.path / "manifest.json"
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_write_then_open_round_trip(bundle: Bundle) -> None:
    again = open_bundle(bundle.path)
    assert again.spec == tiny_spec()
    assert again.precisions == ("fp32",)
    assert again.manifest == bundle.manifest
    assert again.manifest.engines == {}
    assert set(again.manifest.artifacts) == {"model.fp32.onnx", "golden.npz", "reports/parity.json"}
    for rel, sha in again.manifest.artifacts.items():
        assert hashlib.sha256((bundle.path / rel).read_bytes()).hexdigest() == sha
    assert (bundle.path / "engines").is_dir() and (bundle.path / "timing-caches").is_dir()
    assert again.verify().ok


def test_verified_variant_runs_in_onnx_runtime(bundle: Bundle) -> None:
    session = ort.InferenceSession(
        str(bundle.variant_file("fp32")), providers=["CPUExecutionProvider"]
    )
    golden = np.load(bundle.file("golden.npz"))
    diagnosis, severity = session.run(None, {"ct": golden["ct"], "presence": golden["presence"]})
    want_diag, want_sev = reference_outputs(golden["ct"], golden["presence"])
    np.testing.assert_allclose(diagnosis, want_diag, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(severity, want_sev, rtol=1e-5, atol=1e-6)


def test_open_accepts_the_manifest_file(bundle: Bundle) -> None:
    assert open_bundle(bundle.path / "manifest.json").path == bundle.path


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_flipped_byte_is_an_integrity_error_naming_the_file(bundle: Bundle) -> None:
    _flip_byte(bundle.path / "model.fp32.onnx")
    with pytest.raises(IntegrityError) as info:
        bundle.variant_file("fp32")
    msg = str(info.value)
    assert "model.fp32.onnx" in msg and "re-copy it or re-export" in msg
    assert bundle.manifest.variants["fp32"].sha256[:12] in msg
    assert str(bundle.path.parent) not in msg  # relative names only
    report = bundle.verify()
    assert not report.ok
    assert [(p.file, p.kind) for p in report.problems] == [("model.fp32.onnx", "mismatch")]
    assert set(report.ok_files) == {"golden.npz", "reports/parity.json"}


def test_damage_after_a_successful_check_is_caught(bundle: Bundle) -> None:
    bundle.file("golden.npz")  # verified and remembered
    _flip_byte(bundle.path / "golden.npz")
    with pytest.raises(IntegrityError, match=r"golden\.npz"):
        bundle.file("golden.npz")


def test_missing_file_is_an_integrity_error(bundle: Bundle) -> None:
    (bundle.path / "reports" / "parity.json").unlink()
    with pytest.raises(
        IntegrityError, match=r"reports/parity.json is listed in the manifest but missing"
    ):
        bundle.file("reports/parity.json")
    report = bundle.verify()
    assert [(p.file, p.kind) for p in report.problems] == [("reports/parity.json", "missing")]
    with pytest.raises(IntegrityError, match="1 problem"):
        report.raise_for_problems()


def test_unlisted_file_is_refused_when_verifying(bundle: Bundle) -> None:
    (bundle.path / "reports" / "extra.txt").write_text("x")
    with pytest.raises(BundleError, match="not an artifact of this bundle"):
        bundle.file("reports/extra.txt")
    assert bundle.file("reports/extra.txt", verify=False).read_text() == "x"


def test_unknown_variant_lists_the_ones_there(bundle: Bundle) -> None:
    with pytest.raises(BundleError, match=r"no 'int8' variant; it has: fp32"):
        bundle.variant_file("int8")


def test_variant_missing_from_artifacts_is_reported_by_verify(bundle: Bundle) -> None:
    doc = json.loads((bundle.path / "manifest.json").read_text())
    del doc["artifacts"]["model.fp32.onnx"]
    (bundle.path / "manifest.json").write_text(json.dumps(doc))
    report = open_bundle(bundle.path).verify()
    assert [(p.file, p.kind) for p in report.problems] == [("model.fp32.onnx", "unlisted")]


def test_link_leaving_the_bundle_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    outside = tmp_path / "outside.npz"
    shutil.copy(bundle.path / "golden.npz", outside)
    (bundle.path / "golden.npz").unlink()
    (bundle.path / "golden.npz").symlink_to(outside)
    with pytest.raises(IntegrityError, match="points outside the bundle"):
        bundle.file("golden.npz")


def test_bad_manifest_field_on_disk_names_bundle_and_field(bundle: Bundle) -> None:
    _edit_manifest(bundle, provenance={"medfuse_version": "0.1.0"})
    with pytest.raises(
        ManifestError, match=r"tiny\.medfuse: manifest\.json: provenance\.created_at"
    ):
        open_bundle(bundle.path)


def test_newer_schema_on_disk_is_incompatible(bundle: Bundle) -> None:
    _edit_manifest(bundle, schema_version=99)
    with pytest.raises(IncompatibleBundleError, match="schema 99"):
        open_bundle(bundle.path)


def test_path_traversal_in_manifest_is_refused(bundle: Bundle) -> None:
    doc = json.loads((bundle.path / "manifest.json").read_text())
    doc["variants"]["fp32"]["file"] = "../../escape.onnx"
    (bundle.path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(
        ManifestError, match=r"variants\['fp32'\]\.file: '\.\./\.\./escape\.onnx' is not allowed"
    ):
        open_bundle(bundle.path)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found"):
        open_bundle(tmp_path / "nothing.medfuse")
    (tmp_path / "empty.medfuse").mkdir()
    with pytest.raises(ManifestError, match=r"manifest\.json is missing"):
        open_bundle(tmp_path / "empty.medfuse")
    (tmp_path / "junk.bin").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a zip"):
        open_bundle(tmp_path / "junk.bin")
    (tmp_path / "bad.medfuse").mkdir()
    (tmp_path / "bad.medfuse" / "manifest.json").write_text("{oops")
    with pytest.raises(ManifestError, match="not valid JSON"):
        open_bundle(tmp_path / "bad.medfuse")


def _zip_dir(src: Path, out: Path, *, with_top_dir: bool) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                rel = f.relative_to(src.parent if with_top_dir else src)
                zf.write(f, rel.as_posix())
    return out


@pytest.mark.parametrize("with_top_dir", [True, False])
def test_zip_bundle_opens_read_only(bundle: Bundle, tmp_path: Path, with_top_dir: bool) -> None:
    zpath = _zip_dir(bundle.path, tmp_path / "tiny.medfuse.zip", with_top_dir=with_top_dir)
    zipped = open_bundle(zpath)
    assert zipped.read_only and zipped.source == zpath and zipped.label == "tiny.medfuse.zip"
    assert zipped.path.is_relative_to(tmp_path / "cache")
    assert zipped.manifest == bundle.manifest
    assert zipped.verify().ok
    assert sha256_file(zipped.variant_file("fp32")) == bundle.manifest.variants["fp32"].sha256
    assert open_bundle(zpath).path == zipped.path  # extracted once, keyed by the zip's sha256


def test_zip_with_a_damaged_member_fails_verification(bundle: Bundle, tmp_path: Path) -> None:
    _flip_byte(bundle.path / "golden.npz")
    zipped = open_bundle(_zip_dir(bundle.path, tmp_path / "d.zip", with_top_dir=True))
    with pytest.raises(IntegrityError, match=r"bundle d\.zip: golden\.npz does not match"):
        zipped.file("golden.npz")


def test_zip_slip_is_refused(tmp_path: Path) -> None:
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("manifest.json", "{}")
        zf.writestr("../../escaped.txt", "x")
    with pytest.raises(BundleError, match="refusing to extract"):
        open_bundle(zpath)
    assert not (tmp_path / "escaped.txt").exists()


def test_zip_without_manifest(tmp_path: Path) -> None:
    zpath = tmp_path / "other.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("a/readme.txt", "x")
        zf.writestr("b/readme.txt", "x")
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        open_bundle(zpath)
