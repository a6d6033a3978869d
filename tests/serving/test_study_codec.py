"""The study wire format and the PHI-free error mapping (no server)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import fixtures

from medfuse.errors import DicomError, MedfuseError, StudyError
from medfuse.serving.study import (
    MAGIC,
    decode_study,
    encode_study,
    encode_study_folder,
    materialize_study,
    preprocess_payloads,
    safe_error,
)


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medfuse.synthetic import generate_studies

    root = tmp_path_factory.mktemp("studies")
    generate_studies(root, 2, seed=5)
    return root


def _one_study_files(studies: Path) -> list[Path]:
    folder = next(p for p in sorted(studies.iterdir()) if p.is_dir())
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_framing_round_trip() -> None:
    files = [b"", b"a" * 10, bytes(range(256))]
    assert decode_study(encode_study(files)) == files


def test_tar_and_single_file_are_accepted(studies: Path) -> None:
    files = _one_study_files(studies)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in files:
            tar.add(p, arcname=f"../../evil/{p.name}")  # names are never used
    assert sorted(decode_study(buf.getvalue())) == sorted(p.read_bytes() for p in files)
    assert decode_study(files[0].read_bytes()) == [files[0].read_bytes()]


@pytest.mark.parametrize(
    "payload",
    [b"", b"junk" * 100, MAGIC, MAGIC + (2).to_bytes(4, "little") + (9).to_bytes(8, "little")],
)
def test_bad_payloads_are_dicom_errors(payload: bytes) -> None:
    with pytest.raises(DicomError):
        decode_study(payload)


def test_two_studies_in_one_payload_are_refused(studies: Path, tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="one study per request"):
        materialize_study(encode_study_folder(studies), tmp_path / "w")


def test_preprocess_payloads_equals_the_runtime_preprocessing(studies: Path) -> None:
    from medfuse.bundle import open_bundle
    from medfuse.runtime.dicom import discover_studies
    from medfuse.runtime.preprocess import preprocess_study

    pytest.importorskip("onnx")
    spec = open_bundle(fixtures.tiny_reference_bundle(studies.parent / "b")).spec
    found = discover_studies(studies).studies
    payloads = [
        encode_study(Path(i.path).read_bytes() for s in st.series for i in s.instances)
        for st in found
    ]
    got = preprocess_payloads(payloads, spec)
    for row, study in enumerate(found):
        want = {i.name: np.zeros(i.sample_shape(), np.float32) for i in spec.inputs}
        preprocess_study(study, spec, want)
        for name, arr in want.items():
            np.testing.assert_array_equal(got[name][row], arr)


def test_safe_error_keeps_medfuse_messages_and_drops_others(tmp_path: Path) -> None:
    kind, message = safe_error(DicomError(f"file under {tmp_path} is bad"), root=tmp_path)
    assert kind == "DicomError" and str(tmp_path) not in message and "[redacted]" in message
    secret = "ZZSENTINEL^PATIENTNAME"
    kind, message = safe_error(ValueError(f"bad value {secret}"))
    assert kind == "InternalError" and secret not in message and "ValueError" in message


def test_preprocess_errors_name_the_position_only() -> None:
    from medfuse.models.specs import model_spec

    with pytest.raises(MedfuseError, match=r"study #1 of 2: study payload") as info:
        preprocess_payloads([MAGIC + b"\0" * 4, b"junk" * 50], model_spec("reference"))
    assert "/tmp" not in str(info.value)
