"""On-device validation: run a bundle's golden vectors through each backend × variant.

``golden.npz`` holds the input arrays (keyed by input name) and the FP32 reference outputs
(keyed by output name) computed on the build host. :func:`validate_bundle` runs the inputs
through every requested backend and precision variant here, compares with per-precision
tolerances, and returns a :class:`ValidationReport` (device fingerprint, bundle and variant
sha256s, per-output errors, pass/fail) — the API behind ``medfuse validate``.

Tolerances (``scale = max(1, max |reference|)`` of each output): the variant's own
``tolerance`` in the manifest when it has one (``medfuse quantize`` derives it from the drift
its gate measured: :mod:`medfuse.calibration.golden`), else the defaults:

- ``fp32``: max abs error ≤ 1e-4 × scale;
- ``fp16`` (and other reduced float types): ≤ 1e-2 × scale;
- ``int8*``: ≤ 0.1 × scale, and top-1 agreement ≥ 0.9 on classification outputs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse import __version__
from medfuse.errors import BundleError, MedfuseError, UsageError
from medfuse.runtime.backends.select import (
    available_backends,
    choose_backend,
    create_backend,
)

__all__ = [
    "TOLERANCES",
    "OutputCheck",
    "RunCheck",
    "Tolerance",
    "ValidationReport",
    "device_fingerprint",
    "output_scale",
    "tolerance_for",
    "validate_bundle",
]

logger = logging.getLogger(__name__)

GOLDEN = "golden.npz"


@dataclass(frozen=True)
class Tolerance:
    """Allowed error: ``max_abs_rel × scale`` on every element, and a top-1 agreement floor."""

    max_abs_rel: float
    min_top1: float | None = None
    source: str = "default"

    def to_dict(self) -> dict[str, Any]:
        return {"max_abs_rel": self.max_abs_rel, "min_top1": self.min_top1, "source": self.source}


TOLERANCES: Mapping[str, Tolerance] = {
    "fp32": Tolerance(1e-4),
    "fp16": Tolerance(1e-2),
    "int8": Tolerance(1e-1, min_top1=0.9),
}


def tolerance_for(precision: str, recorded: Mapping[str, Any] | None = None) -> Tolerance:
    """The tolerance of a variant: ``recorded`` (the variant's manifest ``tolerance``) when
    given, else the default of ``fp32``, ``int8*`` (any INT8 flavour), or ``fp16``."""
    if recorded is not None:
        top1 = recorded.get("min_top1")
        return Tolerance(
            float(recorded["max_abs_rel"]),
            None if top1 is None else float(top1),
            source="manifest",
        )
    if precision == "fp32":
        return TOLERANCES["fp32"]
    if precision.startswith("int8"):
        return TOLERANCES["int8"]
    return TOLERANCES["fp16"]


@dataclass(frozen=True)
class OutputCheck:
    """One output of one run compared with the golden reference."""

    name: str
    max_abs_error: float
    mean_abs_error: float
    scale: float
    allowed: float
    top1_agreement: float | None
    passed: bool
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "max_abs_error": _num(self.max_abs_error),
            "mean_abs_error": _num(self.mean_abs_error),
            "scale": self.scale,
            "allowed_max_abs_error": self.allowed,
            "top1_agreement": self.top1_agreement,
            "passed": self.passed,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class RunCheck:
    """The golden vectors on one backend × variant."""

    backend: str
    precision: str
    device: str = ""
    providers: tuple[str, ...] = ()
    model_file: str = ""
    model_sha256: str | None = None
    tolerance: Tolerance = field(default_factory=lambda: TOLERANCES["fp32"])
    outputs: tuple[OutputCheck, ...] = ()
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.outputs) and all(o.passed for o in self.outputs)

    def failure(self) -> str:
        """One line saying why this run failed ("" when it passed)."""
        if self.error is not None:
            return f"{self.backend}/{self.precision}: {self.error}"
        bad = [o for o in self.outputs if not o.passed]
        return "; ".join(f"{self.backend}/{self.precision}: {o.problem}" for o in bad)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "precision": self.precision,
            "device": self.device,
            "providers": list(self.providers),
            "model_file": self.model_file,
            "model_sha256": self.model_sha256,
            "tolerance": self.tolerance.to_dict(),
            "outputs": [o.to_dict() for o in self.outputs],
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "passed": self.passed,
        }


@dataclass(frozen=True)
class ValidationReport:
    """Everything ``medfuse validate`` found; ``passed`` only when every run passed."""

    model: Mapping[str, str]
    bundle: Mapping[str, Any]
    fingerprint: Mapping[str, Any]
    checks: tuple[RunCheck, ...]
    created_at: str

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        """One line per failed run (empty when everything passed)."""
        if not self.checks:
            return ["no backend × variant could be run here"]
        return [c.failure() for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "medfuse_version": __version__,
            "created_at": self.created_at,
            "model": dict(self.model),
            "bundle": dict(self.bundle),
            "device": dict(self.fingerprint),
            "checks": [c.to_dict() for c in self.checks],
            "passed": self.passed,
            "failures": self.failures(),
        }


def device_fingerprint() -> dict[str, Any]:
    """This machine's fingerprint (:func:`medfuse.devices.fingerprint.device_fingerprint`) plus
    the ONNX Runtime execution providers available. Holds no host name, user name or path.
    """
    from medfuse.devices.fingerprint import device_fingerprint as machine_fingerprint
    from medfuse.runtime.backends.onnxruntime import ort_providers

    fp = machine_fingerprint()
    fp["onnxruntime_providers"] = list(ort_providers())
    return fp


def _open(bundle: Any) -> Any:
    if isinstance(bundle, str | os.PathLike) or bundle is None:
        from medfuse.bundle import open_bundle, reference_bundle_path

        return open_bundle(reference_bundle_path() if bundle is None else Path(bundle))
    return bundle


def _load_golden(bundle: Any) -> dict[str, NDArray[Any]]:
    path = bundle.file(GOLDEN)  # sha256 checked: IntegrityError when damaged
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise BundleError(f"{GOLDEN} of bundle {bundle.label} cannot be read: {exc}") from exc
    spec = bundle.spec
    need = [i.name for i in spec.inputs] + [o.name for o in spec.outputs]
    missing = [n for n in need if n not in arrays]
    if missing:
        raise BundleError(
            f"{GOLDEN} of bundle {bundle.label} lacks {missing}; it must hold every input and "
            f"output by name (has {sorted(arrays)}); re-export the bundle"
        )
    return arrays


def output_scale(reference: NDArray[Any]) -> float:
    """``max(1, max |reference|)``: what a relative tolerance is multiplied by."""
    ref = np.asarray(reference, dtype=np.float64)
    return max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)


def _compare(
    name: str, got: NDArray[Any], ref: NDArray[Any], kind: str, tol: Tolerance
) -> OutputCheck:
    got64 = np.asarray(got, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    if got64.shape != ref64.shape:
        return OutputCheck(
            name,
            float("nan"),
            float("nan"),
            0.0,
            0.0,
            None,
            False,
            f"output {name!r}: shape {list(got64.shape)} != golden {list(ref64.shape)}",
        )
    scale = output_scale(ref64)
    allowed = tol.max_abs_rel * scale
    if not np.all(np.isfinite(got64)):
        return OutputCheck(
            name,
            float("inf"),
            float("inf"),
            scale,
            allowed,
            None,
            False,
            f"output {name!r}: non-finite values",
        )
    err = np.abs(got64 - ref64)
    max_err = float(err.max()) if err.size else 0.0
    mean_err = float(err.mean()) if err.size else 0.0
    top1: float | None = None
    if kind == "classification" and ref64.ndim == 2 and ref64.shape[1] > 1:
        top1 = float(np.mean(np.argmax(got64, axis=1) == np.argmax(ref64, axis=1)))
    problems = []
    if max_err > allowed:
        problems.append(
            f"output {name!r}: max abs error {max_err:.3g} > allowed {allowed:.3g} "
            f"({tol.max_abs_rel:.3g} × scale {scale:.3g}, {tol.source} tolerance)"
        )
    if tol.min_top1 is not None and top1 is not None and top1 < tol.min_top1:
        problems.append(f"output {name!r}: top-1 agreement {top1:.3f} < {tol.min_top1}")
    return OutputCheck(
        name, max_err, mean_err, scale, allowed, top1, not problems, "; ".join(problems)
    )


def _run_one(
    bundle: Any,
    golden: Mapping[str, NDArray[Any]],
    backend: str,
    precision: str,
    device: str,
    threads: int | None,
) -> RunCheck:
    spec = bundle.spec
    variant = bundle.manifest.variants.get(precision)
    tol = tolerance_for(precision, getattr(variant, "tolerance", None))
    sha = getattr(variant, "sha256", None)
    t0 = time.perf_counter()
    try:
        choice = choose_backend(bundle, backend, precision, device)
        be = create_backend(
            choice,
            threads=threads,
            sample_shapes={i.name: i.sample_shape() for i in spec.inputs},
            check_finite=False,
        )
        be.activate()
    except MedfuseError as exc:
        return RunCheck(
            backend,
            precision,
            model_sha256=sha,
            tolerance=tol,
            error=f"{type(exc).__name__}: {exc}",
            seconds=time.perf_counter() - t0,
        )
    try:
        n = int(golden[spec.inputs[0].name].shape[0])
        step = be.max_batch
        got: dict[str, list[NDArray[Any]]] = {o.name: [] for o in spec.outputs}
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            feeds = {i.name: np.ascontiguousarray(golden[i.name][lo:hi]) for i in spec.inputs}
            out = be.infer(feeds)
            for o in spec.outputs:
                got[o.name].append(out[o.name].copy())
        checks = tuple(
            _compare(o.name, np.concatenate(got[o.name]), golden[o.name], o.kind, tol)
            for o in spec.outputs
        )
        return RunCheck(
            backend,
            precision,
            choice.device,
            be.providers,
            choice.model_path.name,
            sha,
            tol,
            checks,
            None,
            time.perf_counter() - t0,
        )
    except MedfuseError as exc:
        return RunCheck(
            backend,
            precision,
            choice.device,
            be.providers,
            choice.model_path.name,
            sha,
            tol,
            (),
            f"{type(exc).__name__}: {exc}",
            time.perf_counter() - t0,
        )
    finally:
        be.deactivate()


def validate_bundle(
    bundle: Any = None,
    backends: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    *,
    device: str = "auto",
    threads: int | None = None,
) -> ValidationReport:
    """Run ``golden.npz`` through backends × variants on this machine and compare.

    Parameters
    ----------
    bundle:
        A bundle path, an opened bundle, or ``None`` for the shipped reference bundle.
    backends:
        Backend names (``"onnxruntime"``, ``"tensorrt"``); ``None``: every backend available here.
    variants:
        Precisions to check; ``None``: every variant in the bundle.
    device:
        ``"auto"``, ``"cpu"``, ``"cuda[:N]"``.
    threads:
        Intra-op threads for the backend.

    Returns
    -------
    ValidationReport
        Per run: errors per output, top-1 agreement, pass/fail; a variant whose file fails its
        sha256 check is a failed run (``IntegrityError: ...``), not an exception.

    Raises
    ------
    IntegrityError
        ``golden.npz`` is damaged.
    BundleError
        The bundle or its golden file cannot be read.
    UsageError
        An unknown variant was asked for.
    """
    b = _open(bundle)
    golden = _load_golden(b)
    have = tuple(b.precisions)
    chosen = tuple(variants) if variants else have
    unknown = [v for v in chosen if v not in have]
    if unknown:
        raise UsageError(f"variant(s) {unknown} are not in bundle {b.label}; it has {list(have)}")
    if backends:
        names = tuple(backends)
    else:
        names = tuple(n for n, why in available_backends(device).items() if why is None)
    checks = []
    for name in names:
        for precision in chosen:
            check = _run_one(b, golden, name, precision, device, threads)
            logger.info(
                "validate %s/%s: %s", name, precision, "pass" if check.passed else check.failure()
            )
            checks.append(check)
    from medfuse.bundle import sha256_file

    manifest = b.manifest
    return ValidationReport(
        model={"name": manifest.model.name, "version": manifest.model.version},
        bundle={
            "label": b.label,
            "manifest_sha256": sha256_file(Path(b.path) / "manifest.json"),
            "golden_sha256": manifest.artifacts.get(GOLDEN),
            "variants": {p: v.sha256 for p, v in manifest.variants.items()},
        },
        fingerprint=device_fingerprint(),
        checks=tuple(checks),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _num(v: float) -> float | None:
    return v if np.isfinite(v) else None
