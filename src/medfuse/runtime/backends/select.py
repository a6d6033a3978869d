"""Backend, device and precision selection: explicit, explained, and logged.

:func:`choose_backend` turns ``(backend, precision, device)`` requests — each may be
``"auto"`` — into a :class:`BackendChoice` that records what was picked and why;
:func:`create_backend` builds the backend for a choice.

Rules
-----
- ``backend="auto"``: TensorRT when its backend is installed and the bundle has a valid engine
  for this device; else ONNX Runtime.
- ``device="auto"`` (ONNX Runtime): ``cuda:0`` when onnxruntime offers the
  ``CUDAExecutionProvider`` (onnxruntime-gpu), else ``cpu``.
- ``precision="auto"``: on the CPU ``int8-cpu`` > ``fp32`` (> ``int8`` > ``fp16``; FP16 is slow on
  ONNX Runtime's CPU provider) — but a variant that ``medfuse quantize`` measured slower than
  fp32 on the CPU (``accuracy.cpu_timing``) is passed over for fp32; on CUDA ``fp16`` > ``fp32``
  (> ``int8``).

The TensorRT slot: the TensorRT backend lives in ``medfuse.runtime.backends.tensorrt`` (built
separately). When that module is present it provides ``TensorRTBackend`` with
``unavailable_reason(device) -> str | None`` and ``match_engine(bundle, precision) ->
tuple[str, Path, str] | None`` (precision, engine file, why), and is constructed as
``TensorRTBackend(engine_path, device=..., max_batch=..., check_finite=...)``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfuse._deps import require
from medfuse.errors import BackendError, MissingDependencyError, UsageError
from medfuse.runtime.backends.base import DEFAULT_MAX_BATCH, Backend
from medfuse.runtime.backends.onnxruntime import OnnxRuntimeBackend, ort_providers
from medfuse.runtime.threads import check_threads

__all__ = [
    "BACKENDS",
    "BackendChoice",
    "available_backends",
    "choose_backend",
    "cpu_slower_than_fp32",
    "create_backend",
    "parse_device",
    "precision_preference",
]

logger = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "tensorrt")
_TENSORRT_MODULE = "medfuse.runtime.backends.tensorrt"

_CPU_ORDER = ("int8-cpu", "fp32", "int8", "fp16")
_CUDA_ORDER = ("fp16", "fp32", "int8", "int8-cpu")


@dataclass(frozen=True)
class BackendChoice:
    """What a session runs: backend, device, precision variant, model file, and why."""

    backend: str
    device: str
    precision: str
    model_path: Path
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "model_file": self.model_path.name,
            "reason": self.reason,
        }


def parse_device(device: str) -> str:
    """Normalise ``"auto" | "cpu" | "cuda" | "cuda:N" | "gpu"``; raise UsageError otherwise."""
    d = device.strip().lower()
    if d in ("auto", "cpu"):
        return d
    if d in ("cuda", "gpu"):
        return "cuda:0"
    if d.startswith("cuda:") and d[5:].isdigit():
        return d
    raise UsageError(f"device {device!r} is not one of auto, cpu, cuda, cuda:N")


def precision_preference(device: str) -> tuple[str, ...]:
    """The precision order ``precision="auto"`` tries on ``device`` (``"cpu"`` or ``"cuda:N"``)."""
    return _CPU_ORDER if device == "cpu" else _CUDA_ORDER


def _tensorrt_module() -> Any:
    """The TensorRT backend module, or raise the error that says what to install."""
    trt = require("tensorrt", purpose="the TensorRT backend")
    if getattr(trt, "__version__", None) is None:
        # A namespace package without the library, e.g. what `tensorrt-stubs` leaves behind.
        raise MissingDependencyError(
            "'tensorrt' is needed for the TensorRT backend but only its type stubs are "
            "installed; install it with: pip install 'medfuse[tensorrt]' (on Jetson, "
            "TensorRT comes with JetPack, not pip)"
        )
    try:
        return importlib.import_module(_TENSORRT_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != _TENSORRT_MODULE:
            raise
        raise BackendError(
            "the TensorRT backend is not part of this medfuse build yet; use "
            "backend='onnxruntime' (with onnxruntime-gpu for CUDA)"
        ) from exc


def available_backends(device: str = "auto") -> dict[str, str | None]:
    """Each backend name → ``None`` when it can run here, else why it cannot."""
    dev = parse_device(device)
    out: dict[str, str | None] = {}
    out["onnxruntime"] = OnnxRuntimeBackend.unavailable_reason("cpu" if dev == "auto" else dev)
    if dev == "cpu":
        out["tensorrt"] = "TensorRT needs an NVIDIA GPU (device='cpu' was asked for)"
    else:
        try:
            why: str | None = _tensorrt_module().TensorRTBackend.unavailable_reason(dev)
        except Exception as exc:  # MissingDependencyError / BackendError / a broken install
            why = str(exc)
        out["tensorrt"] = why
    return out


def cpu_slower_than_fp32(bundle: Any) -> dict[str, float]:
    """Variants whose quantization measured them slower than fp32 on the CPU → their speed-up.

    ``medfuse quantize`` times the ``int8-cpu`` candidates against fp32 (ONNX Runtime, batch 1)
    and records it in the variant's ``accuracy.cpu_timing``; a speed-up below 1 means INT8 does
    not pay off for this model on CPUs like the build host's (e.g. 3-D convolutions).
    """
    out: dict[str, float] = {}
    manifest = getattr(bundle, "manifest", None)  # a bare .onnx file has none
    for name, variant in (manifest.variants if manifest is not None else {}).items():
        timing = (getattr(variant, "accuracy", None) or {}).get("cpu_timing") or {}
        speedup = timing.get("speedup_vs_fp32")
        if isinstance(speedup, int | float) and speedup < 1.0:
            out[name] = float(speedup)
    return out


def _pick_precision(
    precisions: Sequence[str],
    requested: str,
    device: str,
    slower: Mapping[str, float] | None = None,
) -> tuple[str, str]:
    """The variant to run and why (``slower``: CPU variants measured slower than fp32)."""
    have = list(precisions)
    if not have:
        raise BackendError("the bundle lists no model variants (manifest 'variants' is empty)")
    if requested != "auto":
        if requested not in have:
            raise BackendError(
                f"precision {requested!r} is not in this bundle; it has {', '.join(have)}"
            )
        return requested, f"precision {requested} as requested"
    order = precision_preference(device)
    skipped = {p: x for p, x in (slower or {}).items() if device == "cpu" and "fp32" in have}
    for p in order:
        if p in have and p not in skipped:
            where = "CPU" if device == "cpu" else "CUDA"
            note = "".join(
                f"; {q} skipped (measured {x:.2f}x fp32 speed when quantized)"
                for q, x in skipped.items()
                if q in have
            )
            return p, (
                f"precision {p}: first available in the {where} preference "
                f"{' > '.join(order)} (bundle has {', '.join(have)}){note}"
            )
    return have[0], f"precision {have[0]}: the bundle's only known variant"


def choose_backend(
    bundle: Any,
    backend: str = "auto",
    precision: str = "auto",
    device: str = "auto",
) -> BackendChoice:
    """Decide backend, device and precision for ``bundle`` (an opened bundle).

    Raises
    ------
    MissingDependencyError
        ``backend="tensorrt"`` without TensorRT installed (names the extra and JetPack).
    BackendError
        The requested backend, device or precision cannot be used here (says why and what
        is available).
    UsageError
        An unknown backend or device name.
    """
    if backend not in ("auto", *BACKENDS):
        raise UsageError(f"backend {backend!r} is not one of auto, {', '.join(BACKENDS)}")
    dev = parse_device(device)
    precisions = tuple(bundle.precisions)
    notes: list[str] = []

    if backend == "tensorrt" or (backend == "auto" and dev != "cpu"):
        try:
            trt_backend = _tensorrt_module().TensorRTBackend
            why = trt_backend.unavailable_reason("cuda:0" if dev == "auto" else dev)
            if why is not None:
                raise BackendError(f"TensorRT cannot run here: {why}")
            want = "auto" if precision == "auto" else precision
            match = trt_backend.match_engine(bundle, want)
            if match is None:
                raise BackendError(
                    "the bundle has no valid TensorRT engine for this device; build one with "
                    "`medfuse build BUNDLE`"
                )
            prec, path, reason = match
            trt_device = dev if dev != "auto" else "cuda:0"
            return _log(BackendChoice("tensorrt", trt_device, prec, Path(path), reason))
        except Exception as exc:
            if backend == "tensorrt":
                raise
            notes.append(f"not TensorRT ({str(exc).split(';')[0]})")
    elif backend == "auto":
        notes.append("not TensorRT (device cpu)")

    if dev == "auto":
        dev = "cuda:0" if "CUDAExecutionProvider" in ort_providers() else "cpu"
        notes.append(
            "device cuda:0: onnxruntime has the CUDAExecutionProvider"
            if dev != "cpu"
            else "device cpu: onnxruntime has no CUDAExecutionProvider"
        )
    else:
        notes.append(f"device {dev} as requested")
    why_not = OnnxRuntimeBackend.unavailable_reason(dev)
    if why_not is not None:
        raise BackendError(f"the onnxruntime backend cannot run on {dev}: {why_not}")
    prec, prec_reason = _pick_precision(precisions, precision, dev, cpu_slower_than_fp32(bundle))
    path = Path(bundle.variant_file(prec))
    head = "onnxruntime as requested" if backend == "onnxruntime" else "onnxruntime"
    reason = "; ".join([head, *notes, prec_reason])
    return _log(BackendChoice("onnxruntime", dev, prec, path, reason))


def _log(choice: BackendChoice) -> BackendChoice:
    logger.info(
        "backend %s on %s, variant %s (%s): %s",
        choice.backend,
        choice.device,
        choice.precision,
        choice.model_path.name,
        choice.reason,
    )
    return choice


def create_backend(
    choice: BackendChoice,
    *,
    threads: int | None = None,
    allow_spinning: bool = True,
    graph_optimization: str = "all",
    sample_shapes: Mapping[str, Sequence[int]] | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    check_finite: bool = True,
) -> Backend:
    """Construct (not yet activate) the backend for ``choice`` (``threads`` bounded first)."""
    if threads is not None:
        check_threads(threads, "threads")
    if choice.backend == "onnxruntime":
        return OnnxRuntimeBackend(
            choice.model_path,
            device=choice.device,
            threads=threads,
            allow_spinning=allow_spinning,
            graph_optimization=graph_optimization,
            sample_shapes=sample_shapes,
            max_batch=max_batch,
            check_finite=check_finite,
        )
    if choice.backend == "tensorrt":
        backend: Backend = _tensorrt_module().TensorRTBackend(
            choice.model_path, device=choice.device, max_batch=max_batch, check_finite=check_finite
        )
        return backend
    raise UsageError(f"backend {choice.backend!r} is not one of {', '.join(BACKENDS)}")
