"""Engine cache keys and optimisation profiles: what makes two TensorRT plans different.

A plan is only valid for the exact ONNX file, TensorRT version, GPU (compute capability), DLA
core, optimisation profiles, builder level and version-compatibility it was built with.
:class:`EngineCacheKey` holds all of them and renders a short, stable, file-name-safe string
(``engines/<key>.plan``): readable parts first, then a digest of everything.

Only stdlib here: this module is part of the runtime tier.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medfuse.bundle.spec import ModelSpec
from medfuse.errors import UsageError

__all__ = [
    "EngineCacheKey",
    "OptimizationProfile",
    "TensorShapes",
    "compute_profiles",
    "device_key",
    "profiles_to_dict",
    "slug",
]

_DIGEST_LEN = 12


def slug(text: str) -> str:
    """Lower-case ``text`` with runs of anything but letters and digits turned into ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def _sm(compute_capability: str) -> str:
    return "sm" + compute_capability.replace(".", "")


def device_key(gpu_name: str, compute_capability: str, tensorrt_version: str) -> str:
    """The key of a (GPU, TensorRT) pair: names the timing cache ``timing-caches/<key>.cache``.

    >>> device_key("NVIDIA Jetson AGX Orin 64GB", "8.7", "10.3.0.30")
    'nvidia-jetson-agx-orin-64gb-sm87-trt10.3.0.30'
    """
    trt = re.sub(r"[^0-9A-Za-z.]+", "-", tensorrt_version)
    return f"{slug(gpu_name)}-{_sm(compute_capability)}-trt{trt}"


@dataclass(frozen=True)
class TensorShapes:
    """One input's ``min`` / ``opt`` / ``max`` shapes in an optimisation profile."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass(frozen=True)
class OptimizationProfile:
    """Shapes for every dynamic input; the batch range is ``min_batch..max_batch``."""

    inputs: tuple[TensorShapes, ...]

    @property
    def min_batch(self) -> int:
        return self.inputs[0].min[0]

    @property
    def opt_batch(self) -> int:
        return self.inputs[0].opt[0]

    @property
    def max_batch(self) -> int:
        return self.inputs[0].max[0]

    def accepts(self, batch: int) -> bool:
        """Whether a batch of ``batch`` rows fits this profile."""
        return self.min_batch <= batch <= self.max_batch

    def to_dict(self) -> dict[str, Any]:
        return {t.name: t.to_dict() for t in self.inputs}


def compute_profiles(
    spec: ModelSpec, batch_sizes: Sequence[int], *, fixed_shapes: bool = False
) -> tuple[OptimizationProfile, ...]:
    """Optimisation profiles for ``spec``'s inputs from the requested batch sizes.

    Parameters
    ----------
    spec:
        The model spec; every input's first axis is the batch.
    batch_sizes:
        Requested batch sizes (any order, duplicates ignored).
    fixed_shapes:
        DLA (and CUDA-graph-only deployments) need ``min == opt == max``: one profile per
        batch size. Otherwise one profile with ``min = 1`` (so a partial last batch runs),
        ``opt`` = the middle requested size (upper middle for an even count) and ``max`` = the
        largest.

    Raises
    ------
    UsageError
        No batch size, or one below 1.
    """
    sizes = sorted(set(int(b) for b in batch_sizes))
    if not sizes or sizes[0] < 1:
        raise UsageError(
            f"batch sizes {list(batch_sizes)} are invalid; give positive integers, e.g. 1,4,8"
        )

    def profile(lo: int, opt: int, hi: int) -> OptimizationProfile:
        return OptimizationProfile(tuple(
            TensorShapes(i.name, i.batch_shape(lo), i.batch_shape(opt), i.batch_shape(hi))
            for i in spec.inputs
        ))

    if fixed_shapes:
        return tuple(profile(b, b, b) for b in sizes)
    return (profile(1, sizes[len(sizes) // 2], sizes[-1]),)


def profiles_to_dict(
    profiles: Sequence[OptimizationProfile], batch_sizes: Sequence[int]
) -> dict[str, Any]:
    """The JSON form stored in an engine record's ``profile`` field."""
    return {
        "batch_sizes": sorted(set(int(b) for b in batch_sizes)),
        "profiles": [p.to_dict() for p in profiles],
    }


@dataclass(frozen=True)
class EngineCacheKey:
    """Everything that makes a TensorRT plan valid only where it was built.

    ``str(key)`` (== :attr:`text`) is stable across runs and machines, at most ~80 characters
    of ``[A-Za-z0-9._-]``: ``<variant>-<sm>-trt<version>-<gpu|dlaN>-b<max>-<digest>``, where the
    digest covers every field (so any change gives a new key and both plans coexist).
    """

    variant: str
    variant_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    dla_core: int | None
    profile: Mapping[str, Any]
    builder_optimization_level: int
    version_compatible: bool

    def components(self) -> dict[str, Any]:
        """All fields as plain JSON values (what the digest is computed from)."""
        return {
            "variant": self.variant,
            "variant_sha256": self.variant_sha256,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "dla_core": self.dla_core,
            "profile": json.loads(json.dumps(self.profile, sort_keys=True)),
            "builder_optimization_level": self.builder_optimization_level,
            "version_compatible": self.version_compatible,
        }

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.components(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_DIGEST_LEN]

    @property
    def text(self) -> str:
        where = "gpu" if self.dla_core is None else f"dla{self.dla_core}"
        trt = re.sub(r"[^0-9A-Za-z.]+", "-", self.tensorrt_version)
        batches = self.profile.get("batch_sizes") or [0]
        vc = "-vc" if self.version_compatible else ""
        return (f"{slug(self.variant)}-{_sm(self.compute_capability)}-trt{trt}-{where}"
                f"-b{max(batches)}{vc}-{self.digest}")

    @property
    def file(self) -> str:
        """Where the plan lives in the bundle: ``engines/<key>.plan``."""
        return f"engines/{self.text}.plan"

    def __str__(self) -> str:
        return self.text
