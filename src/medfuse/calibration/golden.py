"""Golden vectors that ``quantize`` refreshes, and the validation tolerances it derives.

``medfuse validate`` compares each variant's outputs on ``golden.npz`` with the stored FP32
outputs. Random N(0, 1) golden rows are far outside what the calibration saw, so a sound INT8
variant fails there (and a fixed tolerance means little). ``quantize`` therefore:

- **refreshes the golden set** (:func:`refresh_golden`): rows export took from studies are
  kept; random rows and rows an earlier ``quantize`` added are replaced by the first
  :data:`GOLDEN_FROM_CALIBRATION` usable calibration studies (read through the runtime's
  preprocessing), with FP32 outputs from ONNX Runtime on this machine;
- **derives each variant's tolerance** (:func:`derive_tolerance`) from the drift the gate
  measured against FP32 on the held-out studies and on the golden rows:
  ``max_abs_rel = max(floor, margin × measured)``, with ``measured`` the largest
  ``|variant − FP32| / scale`` over both sets and outputs (``scale = max(1, max |golden FP32|)``,
  as ``validate`` scales); ``min_top1`` = the lower of the default 0.9 and the agreement measured
  on the golden rows. A variant ``quantize`` wrote therefore passes ``validate`` on the machine
  that wrote it; the margin leaves room for another thread count or batch split, and the floor
  for a variant whose measured drift is ~0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle import Bundle, GoldenRecord
from medfuse.bundle.spec import ModelSpec
from medfuse.calibration._ort import cpu_session, run_all
from medfuse.calibration.reader import ReaderStats, StudySet, input_buffers, prepare_feed
from medfuse.errors import BundleError
from medfuse.runtime.validate import GOLDEN, output_scale, tolerance_for

__all__ = [
    "GOLDEN_FROM_CALIBRATION",
    "TOLERANCE_FLOORS",
    "TOLERANCE_MARGIN",
    "GoldenSet",
    "derive_tolerance",
    "existing_golden_record",
    "refresh_golden",
]

logger = logging.getLogger(__name__)
Arrays = dict[str, NDArray[Any]]

GOLDEN_FROM_CALIBRATION = 8
"""Calibration studies ``quantize`` puts into ``golden.npz``."""
TOLERANCE_MARGIN = 2.0
"""Allowed error = this × the largest relative drift the gate measured (or the floor)."""
TOLERANCE_FLOORS: Mapping[str, float] = {"int8": 0.02, "fp16": 2e-3}
"""Smallest ``max_abs_rel`` per base precision (``int8`` covers every INT8 flavour)."""


@dataclass(frozen=True)
class GoldenSet:
    """The golden rows a quantize run gates and validates on."""

    inputs: Arrays
    outputs: Arrays
    record: GoldenRecord
    changed: bool

    @property
    def n(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0]) if self.inputs else 0

    def write(self, path: Path) -> Path:
        """Write the set as ``golden.npz`` (inputs and outputs keyed by name)."""
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **self.inputs, **self.outputs)  # type: ignore[arg-type]
        return path


def existing_golden_record(bundle: Bundle, rows: int) -> GoldenRecord:
    """The bundle's golden record; for a bundle older than the record, what its provenance
    says (``golden_source``), else random."""
    if bundle.manifest.golden is not None:
        return bundle.manifest.golden
    source = "studies" if bundle.manifest.golden_source == "studies" else "random"
    return GoldenRecord(rows={source: rows}, reference="pytorch", written_by="export")


def _load(bundle: Bundle) -> tuple[Arrays, Arrays]:
    spec = bundle.spec
    if GOLDEN not in bundle.manifest.artifacts:
        return {}, {}
    try:
        with np.load(bundle.file(GOLDEN), allow_pickle=False) as z:
            ins = {i.name: np.ascontiguousarray(z[i.name]) for i in spec.inputs if i.name in z}
            outs = {o.name: np.ascontiguousarray(z[o.name]) for o in spec.outputs if o.name in z}
    except (OSError, ValueError) as exc:
        raise BundleError(f"{GOLDEN} of bundle {bundle.label} cannot be read: {exc}") from exc
    if len(ins) != len(spec.inputs) or len(outs) != len(spec.outputs):
        return {}, {}  # incomplete: replaced from the calibration studies
    return ins, outs


def _calibration_rows(studies: StudySet, spec: ModelSpec, n: int) -> Arrays:
    bufs = input_buffers(spec)
    stats = ReaderStats()
    rows: list[Arrays] = []
    for study in studies.studies:
        if len(rows) >= n:
            break
        feed = prepare_feed(study, spec, bufs, stats)
        if feed is not None:
            rows.append(feed)
    if not rows:
        return {}
    return {i.name: np.concatenate([r[i.name] for r in rows]) for i in spec.inputs}


def refresh_golden(
    bundle: Bundle, studies: StudySet, fp32: Path, n: int = GOLDEN_FROM_CALIBRATION
) -> GoldenSet:
    """Keep the golden rows export took from studies; replace random rows and rows an earlier
    quantize added with the first ``n`` usable calibration studies (FP32 outputs from ONNX
    Runtime here). Unchanged when no calibration study is usable."""
    spec = bundle.spec
    ins, outs = _load(bundle)
    total = int(next(iter(ins.values())).shape[0]) if ins else 0
    record = existing_golden_record(bundle, total)
    keep = min(int(record.rows.get("studies", 0)), total)
    new_in = _calibration_rows(studies, spec, n)
    if not new_in:
        logger.warning("no calibration study was usable for golden vectors; golden.npz kept")
        return GoldenSet(ins, outs, record, changed=False)
    new_out = run_all(cpu_session(fp32), new_in)
    rows_new = int(next(iter(new_in.values())).shape[0])
    merged_in = {
        k: np.concatenate([ins[k][:keep], new_in[k]]) if keep else new_in[k] for k in new_in
    }
    merged_out = {
        o.name: (
            np.concatenate([outs[o.name][:keep], new_out[o.name].astype(outs[o.name].dtype)])
            if keep
            else new_out[o.name]
        )
        for o in spec.outputs
    }
    new_record = GoldenRecord(
        rows={"studies": keep, "calibration": rows_new},
        reference="pytorch+onnxruntime-fp32" if keep else "onnxruntime-fp32",
        written_by="quantize",
    )
    logger.info(
        "golden vectors: %d study row(s) kept, %d calibration row(s) (was %s)",
        keep,
        rows_new,
        record.source,
    )
    return GoldenSet(merged_in, merged_out, new_record, changed=True)


def _floor(precision: str) -> float:
    base = "int8" if precision.startswith("int8") else "fp16"
    return TOLERANCE_FLOORS[base]


def derive_tolerance(
    precision: str,
    spec: ModelSpec,
    reference: Mapping[str, NDArray[Any]],
    candidate: Mapping[str, NDArray[Any]],
    golden: GoldenSet,
) -> dict[str, Any]:
    """The tolerance ``validate`` gives ``precision`` (see the module docstring).

    ``reference`` / ``candidate`` are the FP32 / variant outputs over the gate's rows (held-out
    studies first, the golden rows last, as :class:`~medfuse.calibration.candidates.CandidateRun`
    stacks them).
    """
    default = tolerance_for(precision)
    measured = 0.0
    top1: float | None = None
    n = golden.n
    for out in spec.outputs:
        ref = np.asarray(reference[out.name], dtype=np.float64)
        cand = np.asarray(candidate[out.name], dtype=np.float64)
        gold = np.asarray(golden.outputs.get(out.name, ref[:0]), dtype=np.float64)
        scale = output_scale(gold if n else ref)
        drift = float(np.abs(cand - ref).max(initial=0.0))
        if n:
            drift = max(drift, float(np.abs(cand[-n:] - gold).max(initial=0.0)))
        measured = max(measured, drift / scale)
        if out.kind == "classification" and gold.ndim == 2 and gold.shape[1] > 1 and n:
            agree = float(np.mean(np.argmax(cand[-n:], axis=1) == np.argmax(gold, axis=1)))
            top1 = agree if top1 is None else min(top1, agree)
    min_top1 = None
    if default.min_top1 is not None:
        min_top1 = default.min_top1 if top1 is None else min(default.min_top1, top1)
    return {
        "max_abs_rel": max(_floor(precision), TOLERANCE_MARGIN * measured),
        "min_top1": min_top1,
        "basis": {
            "measured_max_abs_rel": measured,
            "margin": TOLERANCE_MARGIN,
            "floor": _floor(precision),
            "rows": int(next(iter(reference.values())).shape[0]),
            "golden_rows": n,
        },
    }
