"""Parity of an exported graph: ONNX Runtime's outputs against PyTorch's, output by output.

The relative error of an output is ``max|onnx - torch| / max(max|torch|, eps)`` over the
whole batch, with ``eps = 1e-3`` so that outputs near zero are judged on an absolute scale.

Parity cannot pass vacuously: when PyTorch's own outputs are degenerate over all cases —
at the float noise floor (``max|torch| < NOISE_FLOOR``: a zero-initialised head, a network
whose activations vanished at default init) or near-constant across inputs (their spread is
below ``CONSTANT_SPREAD`` of their scale) — the report says so per output, a warning is
logged, and real inputs (``--golden-studies``) or trained weights are suggested.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse._deps import require
from medfuse.bundle.spec import ModelSpec
from medfuse.errors import ExportError
from medfuse.export.inputs import validate_inputs

__all__ = [
    "CONSTANT_SPREAD",
    "NOISE_FLOOR",
    "PARITY_EPS",
    "PARITY_TOLERANCE",
    "OutputParity",
    "ParityCase",
    "ParityReport",
    "check_parity",
    "degenerate_outputs",
    "onnx_outputs",
    "torch_outputs",
]

logger = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4
PARITY_EPS = 1e-3
NOISE_FLOOR = 1e-6
"""Outputs whose largest magnitude is below this are float noise: parity compares nothing."""
CONSTANT_SPREAD = 1e-4
"""Outputs whose spread across inputs is below this fraction of their scale are constant."""


@dataclass(frozen=True)
class OutputParity:
    """One output's agreement on one case."""

    name: str
    max_abs_error: float
    max_abs_reference: float
    relative_error: float
    finite: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "max_abs_error": self.max_abs_error,
            "max_abs_reference": self.max_abs_reference,
            "relative_error": self.relative_error,
            "finite": self.finite,
        }


@dataclass(frozen=True)
class ParityCase:
    """One batch of inputs (``source`` says where they came from) and its per-output parity."""

    source: str
    batch: int
    outputs: tuple[OutputParity, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "batch": self.batch,
            "outputs": [o.to_dict() for o in self.outputs],
        }


@dataclass(frozen=True)
class ParityReport:
    """All cases, the tolerance they were held to, and the verdict."""

    cases: tuple[ParityCase, ...]
    tolerance: float
    eps: float = PARITY_EPS
    degenerate: Mapping[str, str] = field(default_factory=dict)
    """Output name → why its reference outputs cannot show a disagreement."""

    @property
    def warnings(self) -> list[str]:
        """One sentence per degenerate output, with what would make the check meaningful."""
        return [
            f"parity of output {name!r} is vacuous: {why}; export with real inputs "
            "(--golden-studies DIR, API golden_inputs=) or trained weights"
            for name, why in self.degenerate.items()
        ]

    @property
    def worst(self) -> dict[str, float]:
        """Worst relative error per output over all cases."""
        worst: dict[str, float] = {}
        for case in self.cases:
            for o in case.outputs:
                worst[o.name] = max(worst.get(o.name, 0.0), o.relative_error)
        return worst

    @property
    def ok(self) -> bool:
        """Every output of every case is finite and within tolerance."""
        return all(
            o.finite and o.relative_error <= self.tolerance for c in self.cases for o in c.outputs
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tolerance": self.tolerance,
            "metric": "max|onnx - torch| / max(max|torch|, eps)",
            "eps": self.eps,
            "worst_relative_error": self.worst,
            "cases": [c.to_dict() for c in self.cases],
            "degenerate": dict(self.degenerate),
            "warnings": self.warnings,
        }


def torch_outputs(
    module: Any, spec: ModelSpec, inputs: Mapping[str, NDArray[np.generic]]
) -> dict[str, NDArray[np.float32]]:
    """Run ``module`` (eval mode, no grad) on ``inputs``; outputs keyed by the spec's names."""
    torch = require("torch", purpose="the parity check")
    module.eval()
    with torch.no_grad():
        result = module(
            *[torch.from_numpy(np.ascontiguousarray(inputs[i.name])) for i in spec.inputs]
        )
    if isinstance(result, torch.Tensor):
        result = (result,)
    if len(result) != len(spec.outputs):
        raise ExportError(
            f"the module returned {len(result)} output(s); the spec names {len(spec.outputs)}: "
            f"{[o.name for o in spec.outputs]}"
        )
    return {o.name: r.detach().cpu().numpy() for o, r in zip(spec.outputs, result, strict=True)}


def onnx_outputs(
    model: str | Path | bytes, spec: ModelSpec, inputs: Mapping[str, NDArray[np.generic]]
) -> dict[str, NDArray[np.float32]]:
    """Run an ONNX model in ONNX Runtime (CPU, 2 threads); outputs keyed by the spec's names."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    try:
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        feeds = {i.name: np.ascontiguousarray(inputs[i.name]) for i in spec.inputs}
        result = session.run([o.name for o in spec.outputs], feeds)
    except Exception as exc:
        raise ExportError(
            f"ONNX Runtime could not run the exported graph: {type(exc).__name__}: {str(exc)[:400]}"
        ) from exc
    return {o.name: np.asarray(r) for o, r in zip(spec.outputs, result, strict=True)}


def _compare(name: str, got: NDArray[Any], ref: NDArray[Any], eps: float) -> OutputParity:
    got64, ref64 = got.astype(np.float64), ref.astype(np.float64)
    if got64.shape != ref64.shape:
        raise ExportError(
            f"output {name!r}: ONNX shape {list(got.shape)} != PyTorch shape {list(ref.shape)}"
        )
    finite = bool(np.isfinite(got64).all() and np.isfinite(ref64).all())
    if not finite:
        return OutputParity(name, float("inf"), float("nan"), float("inf"), False)
    err = float(np.max(np.abs(got64 - ref64))) if got64.size else 0.0
    ref_max = float(np.max(np.abs(ref64))) if ref64.size else 0.0
    return OutputParity(name, err, ref_max, err / max(ref_max, eps), True)


def degenerate_outputs(
    refs: Mapping[str, Sequence[NDArray[Any]]],
    *,
    noise_floor: float = NOISE_FLOOR,
    spread: float = CONSTANT_SPREAD,
) -> dict[str, str]:
    """Which outputs' reference values cannot reveal a disagreement, and why.

    Parameters
    ----------
    refs:
        Output name → PyTorch's outputs of each case (batch axis first).
    noise_floor:
        Largest magnitude below which an output is float noise.
    spread:
        Largest range across inputs, as a fraction of the output's scale, below which the
        output is constant. Judged only with at least two input rows.
    """
    out: dict[str, str] = {}
    for name, arrays in refs.items():
        rows = [np.asarray(a, dtype=np.float64) for a in arrays if np.size(a)]
        if not rows:
            continue
        flat = np.concatenate([r.reshape(r.shape[0], -1) for r in rows], axis=0)
        if not np.isfinite(flat).all():
            continue  # reported as non-finite by the comparison
        scale = float(np.max(np.abs(flat)))
        if scale < noise_floor:
            out[name] = (
                f"PyTorch's outputs are at the float noise floor (max |output| {scale:.1e} "
                f"< {noise_floor:g})"
            )
            continue
        if flat.shape[0] >= 2:
            rng = float(np.max(flat.max(axis=0) - flat.min(axis=0)))
            if rng < spread * scale:
                out[name] = (
                    f"PyTorch's outputs are the same for every input ({flat.shape[0]} inputs, "
                    f"spread {rng:.1e} at scale {scale:.1e})"
                )
    return out


def check_parity(
    module: Any,
    spec: ModelSpec,
    model: str | Path | bytes,
    cases: Sequence[tuple[str, Mapping[str, NDArray[np.generic]]]],
    *,
    tolerance: float = PARITY_TOLERANCE,
    eps: float = PARITY_EPS,
    raise_on_failure: bool = True,
) -> ParityReport:
    """Compare ONNX Runtime with PyTorch on each case, output by output.

    Parameters
    ----------
    module:
        The PyTorch module that was exported.
    spec:
        Its spec.
    model:
        The exported ``.onnx`` (path or bytes).
    cases:
        ``(source, inputs)`` pairs, e.g. ``("random", {...})``, ``("studies", {...})``.
    tolerance:
        Largest relative error allowed per output.
    eps:
        Floor of the denominator of the relative error.
    raise_on_failure:
        Raise :class:`ExportError` when a case fails (otherwise just report it).

    Returns
    -------
    ParityReport
        Per case and output: max absolute error, reference scale, relative error.

    Raises
    ------
    ExportError
        When an output is not finite or exceeds ``tolerance`` (with the numbers).
    """
    results = []
    refs: dict[str, list[NDArray[Any]]] = {o.name: [] for o in spec.outputs}
    for source, inputs in cases:
        batch = validate_inputs(spec, inputs, f"parity case {source!r}")
        ref = torch_outputs(module, spec, inputs)
        for o in spec.outputs:
            refs[o.name].append(ref[o.name])
        got = onnx_outputs(model, spec, inputs)
        outs = tuple(_compare(o.name, got[o.name], ref[o.name], eps) for o in spec.outputs)
        results.append(ParityCase(source, batch, outs))
        logger.info(
            "parity %s batch %d: %s",
            source,
            batch,
            ", ".join(f"{o.name} {o.relative_error:.2e}" for o in outs),
        )
    report = ParityReport(tuple(results), tolerance, eps, degenerate_outputs(refs))
    for warning in report.warnings:
        logger.warning("%s", warning)
    if raise_on_failure and not report.ok:
        bad = [
            f"{c.source} (batch {c.batch}) {o.name}: relative error {o.relative_error:.3e} "
            f"(max abs error {o.max_abs_error:.3e}, reference scale {o.max_abs_reference:.3e}"
            f"{', non-finite values' if not o.finite else ''})"
            for c in report.cases
            for o in c.outputs
            if not (o.finite and o.relative_error <= tolerance)
        ]
        raise ExportError(
            f"ONNX Runtime disagrees with PyTorch beyond relative error {tolerance:g}: "
            + "; ".join(bad)
            + " — check for training-mode layers, nondeterministic ops or exporter bugs"
        )
    return report
