"""Check a cached TensorRT plan against this device *before* deserializing it.

TensorRT has no preflight API: a plan from another TensorRT build or GPU fails inside
``deserialize_cuda_engine`` ("expecting compute 8.6 got compute 7.5, please rebuild"). medfuse
records every plan's TensorRT version, compute capability, DLA core and sha256 in the manifest
(:class:`~medfuse.bundle.EngineRecord`) and refuses a mismatch with an
:class:`~medfuse.errors.IncompatibleBundleError` that says what was expected, what was found,
and the command that rebuilds the engine.

Only stdlib here: this module is part of the runtime tier.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from medfuse.bundle.integrity import sha256_file
from medfuse.bundle.manifest import EngineRecord
from medfuse.devices.detect import DetectedDevice
from medfuse.errors import IncompatibleBundleError, MedfuseError

__all__ = [
    "EngineChoice",
    "preflight_engine",
    "rebuild_command",
    "select_engine",
    "tensorrt_runs_plan",
]

logger = logging.getLogger(__name__)

# "auto" tries the fastest first; tagged variants for other targets ("int8-cpu") are skipped.
_AUTO_ORDER = ("int8", "fp16", "fp32")


def rebuild_command(record: EngineRecord, bundle: str = "BUNDLE") -> str:
    """The ``medfuse build`` command that builds ``record``'s engine again on this device."""
    cmd = f"medfuse build {bundle} --variant {record.variant}"
    if record.dla_core is not None:
        cmd += f" --dla {record.dla_core}"
    batches = record.profile.get("batch_sizes") if record.profile else None
    if batches:
        cmd += " --batch " + ",".join(str(b) for b in batches)
    if record.version_compatible:
        cmd += " --version-compatible"
    return cmd


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def tensorrt_runs_plan(built_with: str, runtime: str, *, version_compatible: bool) -> bool:
    """Whether a TensorRT ``runtime`` can deserialize a plan built with ``built_with``.

    A normal plan needs the very same version (major.minor.patch.build, as far as both give
    it). A version-compatible plan runs on the same or a later release of its major version,
    and TensorRT 10 (8) version-compatible plans also on TensorRT 11 (10) — NVIDIA's support
    matrix names exactly these two cross-major combinations.
    """
    b, r = _numbers(built_with), _numbers(runtime)
    if not b or not r:
        return False
    if not version_compatible:
        n = min(len(b), len(r))
        return b[:n] == r[:n] and n >= 3
    if b[0] == r[0]:
        return r >= b
    return (b[0], r[0]) in ((10, 11), (8, 10))


def preflight_engine(
    record: EngineRecord,
    detected: DetectedDevice,
    trt_version: str,
    *,
    plan_path: Path | None = None,
    bundle_label: str = "BUNDLE",
) -> None:
    """Refuse a plan that cannot (or must not) be deserialized here.

    Parameters
    ----------
    record:
        The engine's manifest record.
    detected:
        This device (:func:`~medfuse.devices.detect.detect_device`).
    trt_version:
        The TensorRT version that would deserialize the plan (``tensorrt.__version__``).
    plan_path:
        The plan file; when given its sha256 must equal the record's.
    bundle_label:
        How to name the bundle in the rebuild command.

    Raises
    ------
    IncompatibleBundleError
        No GPU here, another compute capability, another TensorRT version, a DLA core this
        device does not have, or a plan whose bytes differ from the record.
    """
    fix = f"rebuild it here with: {rebuild_command(record, bundle_label)}"
    what = f"engine {record.key}"
    if not detected.has_gpu:
        raise IncompatibleBundleError(
            f"{what} needs an NVIDIA GPU ({record.gpu_name}, compute {record.compute_capability}); "
            f"this machine has none (detected: {detected.kind}); use the ONNX Runtime backend"
        )
    if detected.compute_capability is None:
        raise IncompatibleBundleError(
            f"{what}: the GPU's compute capability could not be detected here "
            f"(expected {record.compute_capability}); {fix}"
        )
    if detected.compute_capability != record.compute_capability:
        raise IncompatibleBundleError(
            f"{what} was built for compute capability {record.compute_capability} "
            f"({record.gpu_name}), found {detected.compute_capability} ({detected.name}); {fix}"
        )
    if not tensorrt_runs_plan(record.tensorrt_version, trt_version,
                              version_compatible=record.version_compatible):
        kind = "version-compatible " if record.version_compatible else ""
        raise IncompatibleBundleError(
            f"{what} is a {kind}plan built with TensorRT {record.tensorrt_version}, found "
            f"TensorRT {trt_version}; {fix}"
        )
    if record.dla_core is not None:
        entry = detected.catalog_entry()
        cores = entry.dla_cores if entry is not None else 0
        if record.dla_core >= cores:
            raise IncompatibleBundleError(
                f"{what} runs on DLA core {record.dla_core}, found {cores} DLA core(s) on "
                f"{detected.name}; {fix}"
            )
    if plan_path is not None:
        if not plan_path.is_file():
            raise IncompatibleBundleError(f"{what}: its plan file is missing; {fix}")
        found = sha256_file(plan_path)
        if found != record.sha256:
            raise IncompatibleBundleError(
                f"{what}: the plan's sha256 is {found[:16]}…, expected {record.sha256[:16]}… "
                f"(damaged or replaced); {fix}"
            )


@dataclass(frozen=True)
class EngineChoice:
    """The engine :func:`select_engine` picked (or ``None``) and why others were passed over."""

    record: EngineRecord | None
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        """One line for a log message when no engine was picked."""
        return "; ".join(self.reasons) or "no TensorRT engine in the bundle"


def select_engine(
    bundle: object,
    detected: DetectedDevice,
    precision: str,
    *,
    trt_version: str | None = None,
) -> EngineChoice:
    """Pick the bundle's engine for this device and ``precision`` (``"auto"``: int8 → fp16 → fp32).

    Never raises for a missing or unfit engine: the caller falls back to ONNX Runtime and logs
    :attr:`EngineChoice.reason`. Files are not hashed here; :func:`preflight_engine` with
    ``plan_path`` does that before deserializing.

    Parameters
    ----------
    bundle:
        A :class:`~medfuse.bundle.Bundle` (anything with ``manifest.engines`` and
        ``manifest.variants``).
    detected:
        This device.
    precision:
        A variant name or ``"auto"``.
    trt_version:
        The TensorRT here; defaults to ``detected.tensorrt_version``.
    """
    manifest = getattr(bundle, "manifest")  # noqa: B009 - duck-typed to keep this module light
    engines: dict[str, EngineRecord] = dict(manifest.engines)
    variants = manifest.variants
    trt = trt_version or detected.tensorrt_version
    if not engines:
        return EngineChoice(None, ("the bundle has no TensorRT engine (build one with "
                                   "`medfuse build BUNDLE`)",))
    if trt is None:
        return EngineChoice(None, ("TensorRT is not installed here",))
    wanted = _AUTO_ORDER if precision == "auto" else (precision,)
    reasons: list[str] = []
    for want in wanted:
        candidates = [e for e in engines.values() if e.variant == want]
        # GPU engines before DLA ones; newest build first.
        candidates.sort(key=lambda e: (e.dla_core is not None, _neg_time(e.built_at)))
        for record in candidates:
            variant = variants.get(record.variant)
            built_from = record.extra.get("variant_sha256") if record.extra else None
            if variant is not None and built_from and built_from != variant.sha256:
                reasons.append(f"engine {record.key}: built from an older {want} graph")
                continue
            try:
                preflight_engine(record, detected, trt)
            except MedfuseError as exc:
                reasons.append(str(exc))
                continue
            return EngineChoice(record, tuple(reasons))
        if precision != "auto" and not candidates:
            reasons.append(f"no {want} engine in the bundle (build one with "
                           f"`medfuse build BUNDLE --variant {want}`)")
    return EngineChoice(None, tuple(reasons))


def _neg_time(built_at: str) -> tuple[int, ...]:
    return tuple(-n for n in _numbers(built_at))
