"""From any ``torch.nn.Module`` + :class:`ModelSpec` to a validated bundle.

:func:`export_bundle` runs the whole export: ONNX (dynamic batch, cleanup, checker), the
TensorRT lint, the parity check against PyTorch (random inputs at batch 1 and 3 and, when
given, real preprocessed studies), golden vectors, reports, and :func:`medfuse.bundle.write_bundle`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import medfuse
from medfuse._deps import require
from medfuse.bundle import Bundle, GoldenRecord, Provenance, VariantSource, write_bundle
from medfuse.bundle.spec import ModelSpec
from medfuse.errors import BundleError
from medfuse.export.inputs import random_inputs, validate_inputs
from medfuse.export.lint import lint_tensorrt
from medfuse.export.onnx_export import DEFAULT_OPSET, export_onnx
from medfuse.export.parity import PARITY_TOLERANCE, check_parity, torch_outputs

__all__ = ["GOLDEN_BATCH", "export_bundle", "write_golden"]

logger = logging.getLogger(__name__)

GOLDEN_BATCH = 4
"""Rows in ``golden.npz`` when no real inputs are given."""


def write_golden(
    module: Any, spec: ModelSpec, inputs: Mapping[str, NDArray[np.generic]], path: Path
) -> dict[str, NDArray[Any]]:
    """Write ``golden.npz``: the input tensors (keys = input names) and PyTorch's FP32 outputs
    (keys = output names). Returns the arrays written."""
    validate_inputs(spec, inputs, "golden inputs")
    arrays: dict[str, NDArray[Any]] = {
        i.name: np.ascontiguousarray(inputs[i.name]) for i in spec.inputs
    }
    arrays.update(torch_outputs(module, spec, inputs))
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    return arrays


def _write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path


def export_bundle(
    module: Any,
    spec: ModelSpec,
    out: str | Path,
    *,
    reports: Mapping[str, Any] | None = None,
    golden_inputs: Mapping[str, NDArray[np.generic]] | None = None,
    accuracy: Mapping[str, Any] | None = None,
    training_config_hash: str | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: float = PARITY_TOLERANCE,
    overwrite: bool = False,
) -> Bundle:
    """Export a PyTorch module to a bundle directory with an FP32 ONNX variant.

    Parameters
    ----------
    module:
        Any ``torch.nn.Module`` whose ``forward`` takes ``spec``'s inputs in order and returns
        its outputs in order.
    spec:
        The model's spec (written to the manifest).
    out:
        The bundle directory to create (``NAME.medfuse``).
    reports:
        Extra JSON-able reports: name → object, written as ``reports/<name>.json`` (e.g. the
        training metrics).
    golden_inputs:
        Real preprocessed inputs (keys = input names, any batch; e.g. from
        :func:`medfuse.export.study_inputs`, the runtime's own preprocessing): used for the
        parity check and as ``golden.npz``. Random N(0, 1) inputs are used when omitted, and
        the manifest's ``golden`` record and ``medfuse inspect`` say so: INT8 tolerances on
        random inputs mean little (``medfuse quantize`` replaces them with its calibration
        studies). They are copied into the bundle: give synthetic or de-identified studies only.
    accuracy:
        Figures for the FP32 variant in the manifest (e.g. held-out AUROC and MAE).
    training_config_hash:
        Recorded in the provenance.
    opset:
        ONNX opset (>= 17).
    tolerance:
        Largest relative error ONNX Runtime may show against PyTorch, per output.
    overwrite:
        Replace an existing bundle at ``out``.

    Returns
    -------
    Bundle
        The bundle just written; its ``reports/export_lint.json`` and
        ``reports/export_parity.json`` hold the lint and parity reports.

    Raises
    ------
    ExportError
        Export failed, the graph is invalid, or parity is beyond ``tolerance``.
    BundleError
        The bundle could not be written.
    """
    torch = require("torch", purpose="ONNX export")
    onnx = require("onnx", purpose="ONNX export")
    out = Path(out)
    if out.exists() and not overwrite:  # fail before minutes of export work
        raise BundleError(
            f"{out.name} already exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    with tempfile.TemporaryDirectory(prefix="medfuse-export-") as tmp_name:
        tmp = Path(tmp_name)
        onnx_path = tmp / "model.fp32.onnx"
        exported = export_onnx(module, spec, onnx_path, opset=opset)
        lint = lint_tensorrt(onnx_path)
        for finding in lint.errors + lint.warnings:
            logger.warning("TensorRT lint %s: %s", finding.severity, finding.message)
        cases: list[tuple[str, Mapping[str, NDArray[np.generic]]]] = [
            ("random", random_inputs(spec, 1, seed=1)),
            ("random", random_inputs(spec, 3, seed=2)),
        ]
        if golden_inputs is not None:
            cases.append(("studies", golden_inputs))
        parity = check_parity(module, spec, onnx_path, cases, tolerance=tolerance)
        golden_source = (
            golden_inputs
            if golden_inputs is not None
            else random_inputs(spec, GOLDEN_BATCH, seed=3)
        )
        written = write_golden(module, spec, golden_source, tmp / "golden.npz")
        golden = GoldenRecord(
            rows={
                "studies" if golden_inputs is not None else "random": int(
                    written[spec.inputs[0].name].shape[0]
                )
            },
            reference="pytorch",
            written_by="export",
        )
        if golden.random:
            logger.warning(
                "golden vectors are random N(0, 1) inputs: validation tolerances on them mean "
                "little; give real studies (--golden-studies DIR, golden_inputs=)"
            )
        files: dict[str, Path] = {"golden.npz": tmp / "golden.npz"}
        files["reports/export_lint.json"] = _write_json(
            tmp / "reports" / "export_lint.json", lint.to_dict()
        )
        parity_doc = parity.to_dict() | {"export": exported.to_dict()}
        files["reports/export_parity.json"] = _write_json(
            tmp / "reports" / "export_parity.json", parity_doc
        )
        for name, obj in (reports or {}).items():
            rel = f"reports/{name}.json"
            files[rel] = _write_json(tmp / rel, obj)
        provenance = Provenance(
            medfuse_version=medfuse.__version__,
            torch_version=str(torch.__version__),
            onnx_version=str(onnx.__version__),
            opset=exported.opset,
            training_config_hash=training_config_hash,
            extra={
                "exporter": exported.exporter,
                "golden_source": "studies" if golden_inputs is not None else "random",
                "parity_worst_relative_error": parity.worst,
            },
        )
        bundle = write_bundle(
            out,
            spec=spec,
            variants={"fp32": VariantSource(onnx_path, accuracy=dict(accuracy or {}))},
            files=files,
            provenance=provenance,
            overwrite=overwrite,
            golden=golden,
        )
    logger.info("wrote bundle %s (lint ok: %s, parity worst %s)", out.name, lint.ok, parity.worst)
    return bundle
