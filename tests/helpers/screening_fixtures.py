"""Builders for the screening tests: a small real bundle with the reference spec, studies.

Shared by ``tests/runtime/test_screening.py``, ``tests/cli/test_run.py``,
``tests/cli/test_demo.py`` and the serving tests. The bundle's ONNX graph is tiny (the mean of each
image input, masked by presence, through a fixed linear layer) but takes exactly the reference
model's inputs, so the real preprocessing of synthetic studies feeds it. The shipped reference
bundle is used instead when it is installed. Importing this module does not import onnx.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from medfuse.errors import BundleError

PHI_SENTINELS = {
    "PatientName": "ZZSENTINEL^PATIENTNAME",
    "PatientID": "ZZSENTINELMRN4711",
    "PatientBirthDate": "19010203",
    "StudyDate": "19020304",
    "SeriesDate": "19020304",
    "AcquisitionDate": "19020304",
    "ContentDate": "19020304",
    "InstitutionName": "ZZSENTINEL GENERAL HOSPITAL",
    "ReferringPhysicianName": "ZZSENTINEL^REFERRER",
    "StudyDescription": "ZZSENTINEL STUDY DESCRIPTION",
    "SeriesDescription": "ZZSENTINEL SERIES DESCRIPTION",
    "AccessionNumber": "ZZACC0815",
    "OperatorsName": "ZZSENTINEL^OPERATOR",
}
"""Header values planted in test studies; none may appear in any output."""

PHI_FOLDER = "ZZDOE^JANE_MRN99887766"
"""A patient-named sub-folder planted below the studies root."""

CODED_SENTINELS = {
    "PhotometricInterpretation": "ZZCODED PHOTO",
    "Modality": "ZZCODEDMOD",
    "VOILUTFunction": "ZZCODEDVOI",
}
"""Text planted in coded attributes, which messages and records may name only as defined terms."""


def tiny_reference_onnx(path: Path, *, nan_bias: bool = False) -> Path:
    """A real ONNX model with the reference spec's inputs and outputs (needs the onnx package).

    ``nan_bias``: the class bias is NaN, so every output row is NaN (a broken model).
    """
    from onnx import helper, numpy_helper

    from helpers.onnx_bundles import float_io, save_model
    from medfuse.models.specs import model_spec

    spec = model_spec("reference")
    images = [i for i in spec.inputs if i.role == "image"]
    presence = next(i for i in spec.inputs if i.role == "presence")
    inputs = [float_io(i.name, ["batch", *i.sample_shape()]) for i in spec.inputs]
    outs = [float_io(o.name, ["batch", int(o.shape[-1])]) for o in spec.outputs]
    n_cls = int(spec.outputs[0].shape[-1])
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 2, (len(images), n_cls)).astype(np.float32), "W"),
        numpy_helper.from_array(
            np.full(n_cls, np.nan, dtype=np.float32)
            if nan_bias
            else np.array([0.5, -0.5, 0.2, -0.2][:n_cls], dtype=np.float32),
            "b",
        ),
        numpy_helper.from_array(np.full((len(images), 1), 0.3, dtype=np.float32), "Ws"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "bs"),
    ]
    nodes = []
    means = []
    for i in images:
        rank = len(i.sample_shape()) + 1
        axes = f"axes_{i.name}"
        inits.append(numpy_helper.from_array(np.arange(1, rank, dtype=np.int64), axes))
        nodes.append(helper.make_node("ReduceMean", [i.name, axes], [f"m_{i.name}"], keepdims=1))
        inits.append(numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), f"shape_{i.name}"))
        nodes.append(
            helper.make_node("Reshape", [f"m_{i.name}", f"shape_{i.name}"], [f"r_{i.name}"])
        )
        means.append(f"r_{i.name}")
    nodes += [
        helper.make_node("Concat", means, ["feat"], axis=1),
        helper.make_node("Mul", ["feat", presence.name], ["masked"]),
        helper.make_node("MatMul", ["masked", "W"], ["mw"]),
        helper.make_node("Add", ["mw", "b"], [spec.outputs[0].name]),
        helper.make_node("MatMul", ["masked", "Ws"], ["ms"]),
        helper.make_node("Add", ["ms", "bs"], [spec.outputs[1].name]),
    ]
    graph = helper.make_graph(nodes, "tiny-reference", inputs, outs, inits)
    return save_model(graph, path, ir_version=9)


def tiny_reference_bundle(root: Path, *, nan_bias: bool = False) -> Path:
    """A bundle (reference spec, tiny graph, fp32 variant) written by ``write_bundle``."""
    from medfuse.bundle import Provenance, VariantSource, write_bundle
    from medfuse.models.specs import model_spec

    root.mkdir(parents=True, exist_ok=True)
    onnx_path = tiny_reference_onnx(root / "tiny.onnx", nan_bias=nan_bias)
    import onnx

    bundle = write_bundle(
        root / "tiny-reference.medfuse",
        spec=model_spec("reference"),
        variants={"fp32": VariantSource(onnx_path, accuracy={})},
        provenance=Provenance(
            torch_version="none",
            onnx_version=onnx.__version__,
            opset=18,
            training_config_hash="00" * 32,
        ),
    )
    return Path(bundle.path)


def shipped_or_tiny_bundle(root: Path) -> Path:
    """The shipped reference bundle when installed, else a tiny one under ``root``."""
    from medfuse.bundle.reference import reference_bundle_path

    try:
        return reference_bundle_path()
    except BundleError:
        import pytest

        pytest.importorskip("onnx")
        return tiny_reference_bundle(root)


def make_error_study(root: Path) -> str:
    """A study whose only file (an X-ray copied from a synthetic one, new UIDs) is truncated in
    its pixel data: discovery finds it, reading it fails. Returns its StudyInstanceUID."""
    src = next(p for p in sorted(root.rglob("*")) if p.is_file() and modality_of(p) in {"CR", "DX"})
    ds = pydicom.dcmread(src)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = (
        generate_uid() for _ in range(3)
    )
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    target = root / "e0e0e0e0" / "f1f1f1f1" / "IMERR0001"
    target.parent.mkdir(parents=True)
    ds.save_as(target)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) - len(ds.PixelData) // 2])
    return str(ds.StudyInstanceUID)


def plant_coded_sentinels(patients: list[Path]) -> None:
    """Junk in coded attributes: the first patient's X-ray gets a PhotometricInterpretation and
    its MR a Modality that are no defined terms; the second patient's X-ray a VOILUTFunction."""
    targets = (
        (patients[0], {"CR", "DX"}, "PhotometricInterpretation"),
        (patients[0], {"MR"}, "Modality"),
        (patients[1], {"CR", "DX"}, "VOILUTFunction"),
    )
    for patient, modalities, keyword in targets:
        for path in sorted(p for p in patient.rglob("*") if p.is_file()):
            if modality_of(path) in modalities:
                ds = pydicom.dcmread(path)
                setattr(ds, keyword, CODED_SENTINELS[keyword])
                ds.save_as(path)


def modality_of(path: Path) -> str | None:
    """The Modality of the DICOM file at ``path`` ("" when absent), None for a non-DICOM file."""
    try:
        return str(pydicom.dcmread(path, stop_before_pixels=True).get("Modality", ""))
    except pydicom.errors.InvalidDicomError:
        return None


def plant_phi(studies: Path) -> None:
    """Write the sentinel values into every DICOM file under ``studies``, and move one patient
    folder to a PHI-named folder."""
    for path in sorted(p for p in studies.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            continue
        for keyword, value in PHI_SENTINELS.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
    patients = sorted(p for p in studies.iterdir() if p.is_dir())
    patients[0].rename(studies / PHI_FOLDER)


def _headers(root: Path, **read: Any) -> Iterator[pydicom.Dataset]:
    """The header (``stop_before_pixels``) of every DICOM file under ``root``; others skipped."""
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, **read)
        except pydicom.errors.InvalidDicomError:
            continue
        yield ds


def _values(elem: pydicom.DataElement) -> list[Any]:
    """An element's values as a list (one value or a multi-value)."""
    value = elem.value
    return list(value) if isinstance(value, list | pydicom.multival.MultiValue) else [value]


def dicom_uids(root: Path) -> set[str]:
    """Every UID value in every DICOM file under ``root`` (read with pydicom, independently)."""
    uids: set[str] = set()
    for ds in _headers(root):
        for elem in ds.iterall():
            if elem.VR == "UI" and elem.value:
                uids.update(str(v) for v in _values(elem) if str(v).count(".") >= 3)
        for elem in ds.file_meta:
            if elem.VR == "UI" and elem.value and elem.keyword == "MediaStorageSOPInstanceUID":
                uids.add(str(elem.value))
    return uids


def header_strings(root: Path) -> set[str]:
    """Free-text and identifying header values (PN, DA, DT, LO, SH, ST, LT; 6+ characters) of
    every DICOM file under ``root``: names, dates, descriptions, institution, IDs."""
    found: set[str] = set()
    for ds in _headers(root):
        for elem in ds.iterall():
            if elem.VR in {"PN", "DA", "DT", "LO", "SH", "ST", "LT"} and elem.value:
                for v in _values(elem):
                    text = str(v).strip()
                    # short all-digit values (serial numbers) could match a hex key by chance
                    if len(text) >= (8 if text.isdigit() else 6):
                        found.add(text)
    return found


def study_uids(root: Path) -> set[str]:
    """StudyInstanceUIDs of the image files under ``root``."""
    return {
        str(ds.StudyInstanceUID)
        for ds in _headers(root, specific_tags=["StudyInstanceUID", "Rows"])
        if "Rows" in ds and "StudyInstanceUID" in ds
    }


def expected_key(uid: str, secret: bytes) -> str:
    """The study key per its definition (HMAC-SHA256, first 128 bits), computed independently."""
    return hmac.new(secret, uid.strip().encode("ascii"), hashlib.sha256).hexdigest()[:32]


def read_secret(path: Path) -> bytes:
    """The study-key secret stored (hex) in ``path``."""
    return bytes.fromhex(path.read_text().strip())


def cli_env(tmp: Path) -> dict[str, str]:
    """Environment for a CLI subprocess: its own HOME, cache and key secret below ``tmp``."""
    env = dict(os.environ)
    env.update(
        HOME=str(tmp / "home"),
        MEDFUSE_CACHE_DIR=str(tmp / "cache"),
        MEDFUSE_KEY_SECRET_FILE=str(tmp / "home" / "study-key.secret"),
        PYTHONWARNINGS="error",
        COLUMNS="160",
    )
    return env


CLI = [sys.executable, "-m", "medfuse.cli.main"]

BLOCK_HEAVY_IMPORTS = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "onnx", "onnxscript", "tensorrt"}:
            raise ImportError("blocked for this test: " + name)
        return None
sys.meta_path.insert(0, Block())
"""
"""Python source that makes torch, onnx, onnxscript and tensorrt unimportable, as on a base
install: the start of a ``python -c`` script that runs the CLI lean."""
