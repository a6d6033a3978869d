"""Calibration ranges, computed once from DICOM and cached.

ONNX Runtime's calibrator collects per-tensor statistics over the calibration reader and
reduces them to ranges (``TensorsData``). They are cached as JSON under the cache directory,
keyed by the FP32 model's sha256, the calibration set's hash, the method and the op types
calibrated. A small index keyed by the folder's header-level fingerprint maps to the set hash,
so a second quantization of the same folder (other precisions, targets, exclusions or gate)
reads no pixel at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfuse._deps import require
from medfuse.bundle.spec import ModelSpec
from medfuse.calibration._ort import quiet_quantizer
from medfuse.calibration.config import QuantizeConfig
from medfuse.calibration.reader import DicomCalibrationReader, StudySet
from medfuse.errors import CalibrationError

__all__ = ["CalibrationRanges", "calibrate_ranges", "ort_method"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationRanges:
    """Where the ranges are, and the provenance of the set they came from (no contents)."""

    path: Path
    method: str
    set_hash: str
    studies: int
    skipped: int
    missing_inputs: dict[str, int]
    cache_hit: bool
    studies_read: int

    def provenance(self) -> dict[str, Any]:
        """The manifest's ``calibration`` entry."""
        return {
            "method": self.method,
            "studies": self.studies,
            "skipped_studies": self.skipped,
            "missing_inputs": dict(self.missing_inputs),
            "set_sha256": self.set_hash,
        }


def ort_method(method: str) -> Any:
    """ONNX Runtime's ``CalibrationMethod`` for ``"entropy"``, ``"minmax"``, ``"percentile"``."""
    q = require("onnxruntime.quantization", purpose="INT8 calibration", extra="quantize")
    return {
        "entropy": q.CalibrationMethod.Entropy,
        "minmax": q.CalibrationMethod.MinMax,
        "percentile": q.CalibrationMethod.Percentile,
    }[method]


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def calibrate_ranges(
    fp32_path: Path,
    fp32_sha256: str,
    studies: StudySet,
    spec: ModelSpec,
    config: QuantizeConfig,
    *,
    reader: DicomCalibrationReader | None = None,
) -> CalibrationRanges:
    """Compute (or load from the cache) the activation ranges of the FP32 model.

    Raises
    ------
    CalibrationError
        Fewer than ``config.min_calib`` usable studies, or ONNX Runtime's calibrator failed.
    """
    ops = ",".join(sorted(config.op_types_to_quantize))
    opts = f"{config.calibrate_method}|{ops}|{config.percentile}|{config.num_bins}"
    opt_hash = hashlib.sha256(opts.encode()).hexdigest()[:12]
    cache = config.resolved_cache_dir()
    index = cache / "sets" / f"{studies.fingerprint[:32]}.json"
    if config.use_cache and index.is_file():
        try:
            meta = json.loads(index.read_text(encoding="utf-8"))
            path = cache / f"ranges-{fp32_sha256[:16]}-{meta['set_hash'][:16]}-{opt_hash}.json"
            if path.is_file():
                logger.info("calibration ranges: cache hit (%s)", config.calibrate_method)
                return CalibrationRanges(
                    path,
                    config.calibrate_method,
                    meta["set_hash"],
                    meta["studies"],
                    meta["skipped"],
                    meta["missing_inputs"],
                    True,
                    0,
                )
        except (OSError, ValueError, KeyError):
            logger.warning("calibration cache index unreadable; recomputing")
    q = require("onnxruntime.quantization", purpose="INT8 calibration", extra="quantize")
    calibrate = require("onnxruntime.quantization.calibrate", purpose="INT8 calibration")
    reader = reader or DicomCalibrationReader(studies, spec)
    extra: dict[str, Any] = {}
    if config.calibrate_method == "percentile":
        extra = {"percentile": config.percentile, "num_bins": config.num_bins}
    elif config.calibrate_method == "entropy":
        extra = {"num_bins": config.num_bins}
    # ONNX Runtime's histogram calibrators print progress on stdout: keep it off ours.
    with (
        tempfile.TemporaryDirectory(prefix="medfuse-calib-") as tmp,
        quiet_quantizer(),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            calibrator = q.create_calibrator(
                Path(fp32_path),
                list(config.op_types_to_quantize),
                augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                calibrate_method=ort_method(config.calibrate_method),
                providers=["CPUExecutionProvider"],
                extra_options=extra,
            )
            calibrator.collect_data(reader)
        except ValueError as exc:
            if reader.stats.used == 0:
                calibrator = None
            else:
                raise CalibrationError(f"calibration failed in ONNX Runtime ({exc})") from exc
        except Exception as exc:
            raise CalibrationError(
                f"calibration failed in ONNX Runtime ({type(exc).__name__}: {exc})"
            ) from exc
        stats = reader.stats
        if stats.used < config.min_calib or calibrator is None:
            raise CalibrationError(
                f"calibration set too small: {stats.used} usable stud(ies) found "
                f"({stats.skipped_unusable} skipped as unusable), at least {config.min_calib} "
                "are needed; add studies with the model's modalities or lower min_calib"
            )
        tensors = calibrator.compute_data()
    set_hash = reader.set_hash
    path = cache / f"ranges-{fp32_sha256[:16]}-{set_hash[:16]}-{opt_hash}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    calibrate.save_tensors_data(tensors, path)
    missing = {k: int(v) for k, v in stats.missing_inputs.items()}
    if config.use_cache:
        _write_json(
            index,
            {
                "set_hash": set_hash,
                "studies": stats.used,
                "skipped": stats.skipped_unusable,
                "missing_inputs": missing,
            },
        )
    logger.info(
        "calibrated %s on %d stud(ies), %d skipped",
        config.calibrate_method,
        stats.used,
        stats.skipped_unusable,
    )
    return CalibrationRanges(
        path,
        config.calibrate_method,
        set_hash,
        stats.used,
        stats.skipped_unusable,
        missing,
        False,
        stats.reads,
    )
