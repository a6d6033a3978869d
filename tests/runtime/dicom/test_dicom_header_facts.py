"""Header facts: discovery parses each header once, load_volume then reads only the pixels.

Checks the stored facts against an independent full read with pydicom, counts header parses
with the profiler (real pydicom, nothing replaced), and checks that a series loaded with its
facts gives exactly what it gives without them (``facts=None``: every file parsed again),
including files changed, truncated or deleted after discovery.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import shutil
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from medfuse.errors import CorruptDicomError, NotDicomError, PixelDataLengthError
from medfuse.runtime.dicom import discover_studies, discovery, load_volume
from medfuse.runtime.dicom.study import HeaderFacts, Series


def _path(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not available")
    return Path(path)


def _write_series(
    folder: Path,
    *,
    n: int = 4,
    syntax: UID = ExplicitVRLittleEndian,
    bits: int = 16,
    stored: int = 16,
    signed: bool = True,
    rescale: tuple[float, float] | None = (1.0, -1024.0),
    positions: bool = True,
    trailer: bool = False,
    seed: int = 0,
) -> list[Path]:
    """``n`` 16×12 slices along z (3 mm apart), written in reverse InstanceNumber order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    study, series = generate_uid(), generate_uid()
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    info = np.iinfo(dtype)
    paths = []
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = syntax
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality = "CT"
        ds.InstanceNumber = n - k
        if positions:
            ds.ImagePositionPatient = [0.0, 0.0, 3.0 * k]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.5, 0.6]
        ds.SliceThickness = 2.0
        ds.Rows, ds.Columns = 16, 12
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored, stored - 1
        ds.PixelRepresentation = int(signed)
        if rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
        lo, hi = max(int(info.min), -(2**31)), min(int(info.max), 2**31 - 1)
        pixels = rng.integers(lo, hi, (16, 12), dtype=np.int64).astype(dtype)
        order: Literal["<", ">"] = ">" if syntax == ExplicitVRBigEndian else "<"
        ds.PixelData = pixels.astype(dtype.newbyteorder(order)).tobytes()
        if trailer:
            ds.add_new(0xFFFCFFFC, "OB", b"\0" * 10)  # DataSetTrailingPadding
        path = folder / f"slice{k:02d}"
        ds.save_as(
            path,
            enforce_file_format=True,
            implicit_vr=syntax == ImplicitVRLittleEndian,
            little_endian=syntax != ExplicitVRBigEndian,
        )
        paths.append(path)
    return paths


def _only_series(root: Path) -> Series:
    (study,) = discover_studies(root).studies
    (series,) = study.series
    return series


def _without_facts(series: Series) -> Series:
    return replace(series, instances=tuple(replace(i, facts=None) for i in series.instances))


def _outcome(series: Series) -> tuple[Any, ...]:
    """What load_volume gives: values and geometry, or the error's type and message."""
    try:
        vol = load_volume(series)
    except Exception as exc:
        return (type(exc), str(exc))
    return (vol.values.tobytes(), vol.shape, vol.spacing, vol.origin, vol.orientation,
            vol.geometry_known)  # fmt: skip


def _calls(profile: cProfile.Profile, module_suffix: str, name: str) -> int:
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]  # (file, line, fn) → calls
    return sum(
        v[1]
        for (file, _, func), v in stats.items()
        if func == name and file.endswith(module_suffix)
    )


def _profiled(fn: Callable[[], object]) -> tuple[int, int]:
    """(header parses: pydicom.dcmread calls, files opened) while running ``fn``."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        fn()
    finally:
        profile.disable()
    return _calls(profile, "filereader.py", "dcmread"), _calls(
        profile, "~", "<built-in method io.open>"
    )


# ----------------------------------------------------------------------------- stored facts


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "RG3_UNCI.dcm"]
)
def test_facts_agree_with_a_full_read(name: str) -> None:
    path = _path(name)
    facts = _only_series(path).instances[0].facts
    assert isinstance(facts, HeaderFacts)
    ds = pydicom.dcmread(path)
    elem = ds["PixelData"]
    data = path.read_bytes()
    assert facts.file_size == len(data)
    assert facts.pixel_offset == elem.file_tell
    assert facts.pixel_length == len(ds.PixelData)
    end = facts.pixel_offset + facts.pixel_length
    assert facts.digest == zlib.crc32(data[end:], zlib.crc32(data[: facts.pixel_offset]))
    order: Literal["<", ">"] = "<" if ds.file_meta.TransferSyntaxUID.is_little_endian else ">"
    want = np.dtype(ds.pixel_array.dtype).newbyteorder(order)
    assert np.dtype(facts.dtype) == want
    assert facts.bits_stored == int(ds.BitsStored)
    if "RescaleSlope" in ds:
        assert facts.rescale == (float(ds.RescaleSlope), float(ds.RescaleIntercept))
    # small typed values only: no dataset, no text from the file
    assert not hasattr(facts, "__dict__")
    assert all(
        v is None or isinstance(v, int | str | tuple)
        for v in (getattr(facts, s) for s in facts.__slots__)
    )
    assert "facts" not in repr(_only_series(path).instances[0])


@pytest.mark.parametrize(
    "name",
    [
        "JPEG2000.dcm",  # compressed
        "SC_rgb_rle.dcm",  # RLE, but colour
        "image_dfl.dcm",  # deflated
        "eCT_Supplemental.dcm",  # per-frame functional groups
        "mlut_18.dcm",  # Modality LUT Sequence
        "liver_1frame.dcm",  # 1 bit per pixel
        "SC_rgb.dcm",  # colour
        "badVR.dcm",  # an attribute loading reads is invalid
        "emri_small_jpeg_2k_lossless_too_short.dcm",
    ],
)
def test_no_facts_where_loading_must_parse(name: str) -> None:
    series = _only_series(_path(name))
    assert series.instances[0].facts is None
    assert _outcome(series) == _outcome(_without_facts(series))


def test_no_facts_for_pixel_data_cut_by_the_end_of_the_file(tmp_path: Path) -> None:
    (path,) = _write_series(tmp_path, n=1)
    path.write_bytes(path.read_bytes()[:-50])
    series = _only_series(tmp_path)
    assert series.instances[0].facts is None
    with pytest.raises(CorruptDicomError, match="pixel data is truncated"):
        load_volume(series)


_TRAILERS = {
    # a sequence item cut short: the full read hits EOFError and pydicom drops every element
    "truncated_sequence": b"\xfa\xff\xfa\xffSQ\x00\x00\xff\xff\xff\xff"
    + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    + b"\x08\x00\x05\x00ZZ\x02\x00ab",
    # Rows again after Pixel Data: a full read takes this one
    "rows_after_pixel_data": b"\x28\x00\x10\x00US\x02\x00\x08\x00",
}


@pytest.mark.parametrize("trailer", sorted(_TRAILERS))
def test_no_facts_when_elements_after_pixel_data_change_a_full_read(
    tmp_path: Path, trailer: str
) -> None:
    (path,) = _write_series(tmp_path, n=1)
    path.write_bytes(path.read_bytes() + _TRAILERS[trailer])
    series = _only_series(tmp_path)
    assert series.instances[0].facts is None
    assert _outcome(series) == _outcome(_without_facts(series))


# ----------------------------------------------------------------------------- parses per file


def test_each_header_is_parsed_once_on_the_whole_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_series(tmp_path, n=6)
    found: list[Series] = []
    parses, opens = _profiled(lambda: found.append(_only_series(tmp_path)))
    assert (parses, opens) == (0, 6)  # plain headers: the fast reader, not pydicom
    with monkeypatch.context() as m:  # and without it, pydicom once per file
        m.setattr(discovery, "read_header_view", lambda fh: None)
        parses, opens = _profiled(lambda: _only_series(tmp_path))
    assert (parses, opens) == (6, 6)
    series = found[0]
    assert all(i.facts is not None for i in series.instances)
    parses, opens = _profiled(lambda: load_volume(series))
    assert (parses, opens) == (0, 6)  # each file read once, no header parsed again
    # without facts every header is parsed a second time
    parses, opens = _profiled(lambda: load_volume(_without_facts(series)))
    assert (parses, opens) == (6, 6)


def test_single_slice_parses_only_its_header_for_the_thickness(tmp_path: Path) -> None:
    _write_series(tmp_path, n=1)
    series = _only_series(tmp_path)
    assert _profiled(lambda: load_volume(series))[0] == 1
    assert load_volume(series).spacing == (2.0, 0.5, 0.6)
    assert _outcome(series) == _outcome(_without_facts(series))


# ----------------------------------------------------------------------------- same results

_VARIANTS: dict[str, dict[str, Any]] = {
    "le_signed_12_of_16": {"stored": 12},
    "le_unsigned_12_of_16": {"stored": 12, "signed": False},
    "big_endian_signed": {"syntax": ExplicitVRBigEndian},
    "big_endian_10_of_16_slope": {
        "syntax": ExplicitVRBigEndian,
        "stored": 10,
        "signed": False,
        "rescale": (2.5, -1024.0),
    },
    "implicit_slope_only": {"syntax": ImplicitVRLittleEndian, "rescale": (0.5, 0.0)},
    "uint8_no_rescale": {"bits": 8, "stored": 8, "signed": False, "rescale": None},
    "int32_slope_intercept": {"bits": 32, "stored": 32, "rescale": (1.5, 3.0)},
    "uint32_24_of_32": {"bits": 32, "stored": 24, "signed": False},
    "identity_rescale": {"rescale": (1.0, 0.0)},
    "trailing_padding": {"trailer": True},
    "no_positions": {"positions": False},
}


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_facts_path_gives_exactly_the_plain_result(tmp_path: Path, variant: str) -> None:
    _write_series(tmp_path, **_VARIANTS[variant])
    series = _only_series(tmp_path)
    assert all(i.facts is not None for i in series.instances)
    got = _outcome(series)
    assert got == _outcome(_without_facts(series))
    assert isinstance(got[0], bytes)


def test_facts_path_against_pydicom_reference(tmp_path: Path) -> None:
    paths = _write_series(tmp_path, syntax=ExplicitVRBigEndian, stored=10, rescale=(2.5, -7.0))
    vol = load_volume(_only_series(tmp_path))
    want = []
    for p in paths:  # written in increasing z: already in volume order
        ds = pydicom.dcmread(p)
        want.append(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    np.testing.assert_array_equal(vol.values, np.stack(want).astype(np.float32))
    assert vol.spacing == (3.0, 0.5, 0.6)


@pytest.mark.parametrize("name", ["CT_small.dcm", "rtdose.dcm"])
def test_real_files_same_with_and_without_facts(name: str) -> None:
    series = _only_series(_path(name))
    assert series.instances[0].facts is not None
    assert _outcome(series) == _outcome(_without_facts(series))


def test_pixel_data_longer_than_the_header_says_is_refused_both_ways() -> None:
    """pydicom's MR_small_padded.dcm carries 128 bytes more pixel data than 64×64×16 bits:
    discovery flags it, it gets no facts, and loading refuses it (it used to be read)."""
    series = _only_series(_path("MR_small_padded.dcm"))
    inst = series.instances[0]
    assert inst.facts is None and inst.problem == "pixel_length"
    with pytest.raises(PixelDataLengthError, match="longer than the header says: 8320 bytes"):
        load_volume(series)


# ----------------------------------------------------------------------------- changed files


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _delete(path: Path) -> None:
    path.unlink()


def _random_same_size(path: Path) -> None:
    path.write_bytes(np.random.default_rng(3).bytes(path.stat().st_size))


def _new_intercept_same_size_same_mtime(path: Path) -> None:
    st = path.stat()
    data = path.read_bytes()
    assert data.count(b"-1024") == 1
    path.write_bytes(data.replace(b"-1024", b"-1000"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the content tells


def _new_pixels_same_size(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-40:] = bytes(40)
    path.write_bytes(bytes(data))


def _replaced_by_another_size(path: Path) -> None:
    shutil.copy(_path("CT_small.dcm"), path)


@pytest.mark.parametrize(
    "change",
    [
        _truncate,
        _delete,
        _random_same_size,
        _new_intercept_same_size_same_mtime,
        _new_pixels_same_size,
        _replaced_by_another_size,
    ],
)
def test_file_changed_after_discovery_gives_the_plain_result(
    tmp_path: Path, change: Callable[[Path], None]
) -> None:
    paths = _write_series(tmp_path)
    series = _only_series(tmp_path)
    change(paths[2])
    assert _outcome(series) == _outcome(_without_facts(series))


def test_changed_files_errors_are_typed(tmp_path: Path) -> None:
    paths = _write_series(tmp_path)
    series = _only_series(tmp_path)
    _truncate(paths[1])
    with pytest.raises(CorruptDicomError, match="pixel data is truncated"):
        load_volume(series)
    _delete(paths[1])
    with pytest.raises(NotDicomError, match="cannot open"):
        load_volume(series)


def test_changed_header_is_read_from_the_file(tmp_path: Path) -> None:
    paths = _write_series(tmp_path)
    series = _only_series(tmp_path)
    before = load_volume(series).values
    _new_intercept_same_size_same_mtime(paths[0])
    after = load_volume(series).values
    np.testing.assert_array_equal(after[0], before[0] + 24.0)  # intercept -1024 → -1000
    np.testing.assert_array_equal(after[1:], before[1:])


def test_mixed_series_is_parsed(tmp_path: Path) -> None:
    _write_series(tmp_path)
    series = _only_series(tmp_path)
    first = replace(series.instances[0], facts=None)
    mixed = replace(series, instances=(first, *series.instances[1:]))
    assert _profiled(lambda: load_volume(mixed))[0] == len(series.instances)
    assert _outcome(mixed) == _outcome(series)


# ----------------------------------------------------------------------------- fuzz

_mutation = st.tuples(
    st.sampled_from(["flip", "truncate", "insert", "header"]),
    st.floats(0, 1),
    st.integers(1, 255),
)


def _mutate(data: bytes, ops: list[tuple[str, float, int]]) -> bytes:
    buf = bytearray(data)
    for op, where, arg in ops:
        if not buf:
            break
        i = int(where * (min(len(buf), 1000) if op == "header" else len(buf) - 1))
        if op in ("flip", "header"):
            buf[min(i, len(buf) - 1)] ^= arg
        elif op == "truncate":
            del buf[i:]
        else:
            buf[i:i] = bytes([arg]) * (arg % 16 + 1)
    return bytes(buf)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    ops=st.lists(_mutation, min_size=1, max_size=3),
    after_discovery=st.booleans(),
    variant=st.sampled_from(
        [
            "big_endian_10_of_16_slope",
            "implicit_slope_only",
            "trailing_padding",
            "uint8_no_rescale",
            "uint32_24_of_32",
        ]
    ),
)
def test_mutated_files_same_with_and_without_facts(
    ops: list[tuple[str, float, int]], after_discovery: bool, variant: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = _write_series(root, n=3, **_VARIANTS[variant])
        victim = paths[1]
        mutant = _mutate(victim.read_bytes(), ops)
        if after_discovery:
            found = discover_studies(root)
            victim.write_bytes(mutant)
        else:
            victim.write_bytes(mutant)
            found = discover_studies(root)
        for study in found.studies:
            for series in study.series:
                assert _outcome(series) == _outcome(_without_facts(series))


def test_discovery_skips_a_header_pydicom_rejects_on_access(tmp_path: Path) -> None:
    """An unknown VR raises only when the value is read; the file is counted, not fatal."""
    paths = _write_series(tmp_path, n=3)
    data = paths[0].read_bytes()
    modality = b"\x08\x00\x60\x00CS"  # (0008,0060) Modality, explicit VR little endian
    assert data.count(modality) == 1
    paths[0].write_bytes(data.replace(modality, b"\x08\x00\x60\x00BS"))
    found = discover_studies(tmp_path)
    assert dict(found.skipped) == {"unreadable": 1}
    assert len(found.studies[0].series[0].instances) == 2


# ----------------------------------------------------------------------------- RLE Lossless


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "emri_small_RLE.dcm"])
def test_rle_files_have_facts_and_load_as_a_full_read_does(name: str, tmp_path: Path) -> None:
    shutil.copy(_path(name), tmp_path / name)
    series = _only_series(tmp_path)
    facts = series.instances[0].facts
    assert isinstance(facts, HeaderFacts) and facts.encoding == "rle"
    assert _outcome(series) == _outcome(_without_facts(series))
    profile = cProfile.Profile()
    profile.enable()
    try:
        load_volume(series)
    finally:
        profile.disable()
    assert _calls(profile, "dataset.py", "convert_pixel_data") == 0  # decoded from the facts


def test_synthetic_rle_series_load_from_facts_like_a_full_read(tmp_path: Path) -> None:
    from medfuse.synthetic import generate_studies

    generate_studies(tmp_path / "in", 6, seed=41)
    rle = [
        se
        for st in discover_studies(tmp_path / "in").studies
        for se in st.series
        if se.instances[0].transfer_syntax == "1.2.840.10008.1.2.5" and len(se.instances) > 2
    ]
    assert rle, "the synthetic studies carry RLE series"
    for series in rle:
        assert all(i.facts is not None and i.facts.encoding == "rle" for i in series.instances)
        assert _outcome(series) == _outcome(_without_facts(series))


def test_an_rle_file_changed_after_discovery_falls_back_to_the_full_read(tmp_path: Path) -> None:
    path = tmp_path / "mr.dcm"
    shutil.copy(_path("MR_small_RLE.dcm"), path)
    series = _only_series(tmp_path)
    facts = series.instances[0].facts
    assert facts is not None and facts.encoding == "rle"
    path.write_bytes(path.read_bytes()[:-300])  # cut inside its last fragment
    outcome = _outcome(series)
    assert outcome == _outcome(_without_facts(series))
    assert outcome[0] is CorruptDicomError  # the full read reports the damage
