"""Mutated real DICOM files: read_frames raises a medfuse DicomError or returns a valid array."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from medfuse.errors import DicomError
from medfuse.runtime.dicom import read_frames

SOURCES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "emri_small.dcm",
    "MR_small_jp2klossless.dcm",
    "emri_small_RLE.dcm",
]
_DATA = {n: Path(p).read_bytes() for n in SOURCES if (p := get_testdata_file(n)) is not None}

mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.integers(1, 64)),
    st.tuples(st.just("header"), st.floats(0, 1), st.integers(0, 255)),
)


def _mutate(data: bytes, ops: list[tuple[str, float, int]], seed: int) -> bytes:
    buf = bytearray(data)
    rng = np.random.default_rng(seed)
    for op, where, arg in ops:
        if not buf:
            break
        if op == "header":  # the first 2 KiB hold the elements that matter most
            i = int(where * min(len(buf) - 1, 2048))
            buf[i] = arg
            continue
        i = int(where * (len(buf) - 1))
        if op == "flip":
            buf[i] ^= arg
        elif op == "truncate":
            del buf[i:]
        else:
            buf[i:i] = rng.integers(0, 256, arg, dtype=np.uint8).tobytes()
    return bytes(buf)


@pytest.mark.skipif(not _DATA, reason="pydicom test files not available")
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(sorted(_DATA)),
    ops=st.lists(mutation, min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_mutated_files_fail_cleanly(
    name: str, ops: list[tuple[str, float, int]], seed: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutant.dcm"
        path.write_bytes(_mutate(_DATA[name], ops, seed))
        try:
            out = read_frames(path)
        except DicomError:
            return
        assert out.dtype == np.float32 and out.ndim == 3
        assert np.isfinite(out).all()
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
