"""The bundle's ``manifest.json``: typed, versioned, validated on load, forward compatible.

Layout of the JSON document (schema version 1)::

    {
      "schema_version": 1,
      "model":      ModelSpec.to_dict()  (name, version, description, inputs, outputs, extra),
      "variants":   {precision: {"file", "sha256", "accuracy", "calibration", ...}},
      "engines":    {cache key: {"file", "sha256", "variant", "tensorrt_version", ...}},
      "artifacts":  {relative path: sha256}   (every file of the bundle but the manifest),
      "provenance": {"medfuse_version", "created_at", "torch_version", ...},
      "golden":     {"file", "rows": {source: n}, "reference", "written_by"}   (optional)
    }

A variant may carry ``tolerance`` (``{"max_abs_rel", "min_top1", "basis"}``): what
``medfuse validate`` allows it, derived by ``medfuse quantize`` from the drift it measured.

Reading is strict about the fields this version knows (a wrong type, a missing required field or
a value outside its set is a :class:`~medfuse.errors.ManifestError` naming the field) and lenient
about the fields it does not know: they are kept in ``extra`` and written back unchanged, so an
older medfuse can rewrite a newer bundle's manifest without losing anything. A manifest whose
``schema_version`` is newer than :data:`SCHEMA_VERSION` is an
:class:`~medfuse.errors.IncompatibleBundleError`.

Only stdlib here: this module is part of the runtime tier.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

from medfuse import __version__
from medfuse.bundle.limits import MANIFEST_LIMITS, load_json, shown
from medfuse.bundle.spec import ModelSpec
from medfuse.errors import IncompatibleBundleError, ManifestError

__all__ = [
    "GOLDEN_SOURCES",
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "EngineRecord",
    "GoldenRecord",
    "Manifest",
    "Provenance",
    "Variant",
    "check_engine_key",
    "check_precision",
    "check_relative_path",
]

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"

# A precision is a base number format plus an optional target tag: "int8", "int8-cpu", "fp16-dla".
_PRECISION_BASES = ("fp32", "fp16", "bf16", "fp8", "int8", "int4")
_PRECISION_RE = re.compile(rf"^({'|'.join(_PRECISION_BASES)})(-[a-z0-9]+)*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_CC_RE = re.compile(r"^\d+\.\d+$")
_VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+-]{0,39}$")

_TOP_KEYS = (
    "schema_version",
    "model",
    "variants",
    "engines",
    "artifacts",
    "provenance",
    "golden",
)
GOLDEN_SOURCES = ("studies", "calibration", "random")
"""Where golden rows come from: studies given to export, quantize's calibration studies, or
random N(0, 1) tensors (which make the INT8 tolerances meaningless)."""


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _frozen(m: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only shallow copy of ``m``."""
    return MappingProxyType(dict(m))


def _plain(value: Any) -> Any:
    """``value`` with every Mapping turned into a dict and tuple into a list, for JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def check_relative_path(rel: str, where: str) -> str:
    """Check that ``rel`` is a relative POSIX path that stays inside the bundle.

    Raises
    ------
    ManifestError
        For an empty, absolute, ``..``-containing, backslashed or drive-lettered path.
    """
    if not isinstance(rel, str) or not rel:
        raise ManifestError(f"{where}: expected a relative file path, got {rel!r}")
    parts = PurePosixPath(rel).parts
    bad = (
        rel.startswith("/")
        or "\\" in rel
        or ":" in rel
        or any(p in ("", ".", "..") for p in rel.split("/"))
        or not parts
    )
    if bad:
        raise ManifestError(
            f"{where}: {rel!r} is not allowed; files must be plain relative paths inside the "
            "bundle (no absolute paths, no '..', '/' as separator)"
        )
    if rel == MANIFEST_NAME:
        raise ManifestError(f"{where}: {rel!r} is the manifest itself, not an artifact")
    return rel


def _field(
    d: Mapping[str, Any],
    key: str,
    where: str,
    kind: type | tuple[type, ...],
    *,
    required: bool = True,
    default: Any = None,
    what: str = "",
) -> Any:
    """``d[key]`` checked against ``kind`` (``bool`` is never an ``int`` here)."""
    if key not in d:
        if required:
            raise ManifestError(f"{where}.{key}: required field is missing")
        return default
    value = d[key]
    if value is None and not required:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    is_bool = isinstance(value, bool)
    if not isinstance(value, kinds) or (is_bool and bool not in kinds):
        names = what or " or ".join(k.__name__ for k in kinds)
        raise ManifestError(
            f"{where}.{key}: expected {names}, got {type(value).__name__} {shown(value)}"
        )
    return value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ManifestError(
            f"{where}: expected an object, got {type(value).__name__} {shown(value)}"
        )
    return value


def _sha(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _SHA256_RE.match(value):
        raise ManifestError(
            f"{where}: expected a sha256 as 64 lowercase hex digits, got {shown(value)}"
        )
    return value


def check_precision(value: Any, where: str) -> str:
    """Check that ``value`` names a precision variant (``"fp32"``, ``"int8-cpu"``, …)."""
    if not isinstance(value, str) or not _PRECISION_RE.match(value):
        raise ManifestError(
            f"{where}: {value!r} is not a precision; use one of {', '.join(_PRECISION_BASES)}, "
            "optionally with a target tag (e.g. 'int8-cpu')"
        )
    return value


def check_engine_key(value: Any, where: str) -> str:
    """Check that an engine cache key is usable as a file name."""
    if not isinstance(value, str) or not _KEY_RE.match(value) or len(value) > 200:
        raise ManifestError(
            f"{where}: {value!r} is not a valid engine key (letters, digits, '.', '_', '+', '-'; "
            "at most 200 characters, not starting with a dot)"
        )
    return value


def _extra(d: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in known}


@dataclass(frozen=True)
class Variant:
    """One precision variant of the model: an ONNX file and what the accuracy gate measured.

    ``calibration`` records how a quantized variant was calibrated (method, number of studies,
    hash of the calibration set) — never the set's contents. ``extra`` keeps fields a newer
    medfuse wrote.
    """

    precision: str
    file: str
    sha256: str
    accuracy: Mapping[str, Any] = field(default_factory=dict)
    calibration: Mapping[str, Any] | None = None
    tolerance: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = ("precision", "file", "sha256", "accuracy", "calibration", "tolerance")

    def __post_init__(self) -> None:
        where = f"variants[{self.precision!r}]"
        check_precision(self.precision, "variants")
        check_relative_path(self.file, f"{where}.file")
        _sha(self.sha256, f"{where}.sha256")
        object.__setattr__(self, "accuracy", _frozen(self.accuracy))
        if self.calibration is not None:
            object.__setattr__(self, "calibration", _frozen(self.calibration))
        if self.tolerance is not None:
            _check_tolerance(self.tolerance, f"{where}.tolerance")
            object.__setattr__(self, "tolerance", _frozen(self.tolerance))
        object.__setattr__(self, "extra", _frozen(self.extra))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the precision is the key it is stored under)."""
        out: dict[str, Any] = {
            "file": self.file,
            "sha256": self.sha256,
            "accuracy": _plain(self.accuracy),
            "calibration": None if self.calibration is None else _plain(self.calibration),
        }
        if self.tolerance is not None:
            out["tolerance"] = _plain(self.tolerance)
        out.update(_plain(self.extra))
        return out

    @classmethod
    def from_dict(cls, precision: str, d: Any) -> Variant:
        """Parse the entry stored under ``variants[precision]``."""
        where = f"variants[{precision!r}]"
        d = _object(d, where)
        check_precision(precision, "variants")
        stated = d.get("precision", precision)
        if stated != precision:
            raise ManifestError(
                f"{where}.precision: {stated!r} differs from the key it is stored under"
            )
        return cls(
            precision=precision,
            file=check_relative_path(_field(d, "file", where, str), f"{where}.file"),
            sha256=_sha(_field(d, "sha256", where, str), f"{where}.sha256"),
            accuracy=_field(
                d, "accuracy", where, Mapping, required=False, default={}, what="an object"
            )
            or {},
            calibration=_field(d, "calibration", where, Mapping, required=False, what="an object"),
            tolerance=_field(d, "tolerance", where, Mapping, required=False, what="an object"),
            extra=_extra(d, cls._KNOWN),
        )


def _check_tolerance(t: Mapping[str, Any], where: str) -> None:
    """``max_abs_rel`` a positive number; ``min_top1`` null or within [0, 1]."""
    rel = t.get("max_abs_rel")
    if isinstance(rel, bool) or not isinstance(rel, int | float) or not rel > 0:
        raise ManifestError(f"{where}.max_abs_rel: expected a positive number, got {shown(rel)}")
    top1 = t.get("min_top1")
    if top1 is not None and (
        isinstance(top1, bool) or not isinstance(top1, int | float) or not 0 <= top1 <= 1
    ):
        raise ManifestError(f"{where}.min_top1: expected null or 0..1, got {shown(top1)}")


@dataclass(frozen=True, kw_only=True)
class GoldenRecord:
    """Where the rows of ``golden.npz`` came from.

    ``rows`` counts rows per source (:data:`GOLDEN_SOURCES`); ``reference`` says what computed
    the stored outputs (``"pytorch"`` at export, ``"onnxruntime-fp32"`` for rows ``quantize``
    added); ``written_by`` is the verb that last wrote the file.
    """

    rows: Mapping[str, int]
    reference: str
    written_by: str
    file: str = "golden.npz"
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = ("file", "rows", "reference", "written_by")

    def __post_init__(self) -> None:
        check_relative_path(self.file, "golden.file")
        for src, n in self.rows.items():
            if src not in GOLDEN_SOURCES:
                raise ManifestError(
                    f"golden.rows: {src!r} is not a golden source; use {', '.join(GOLDEN_SOURCES)}"
                )
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ManifestError(f"golden.rows[{src!r}]: expected a count >= 0, got {shown(n)}")
        object.__setattr__(self, "rows", _frozen({k: v for k, v in self.rows.items() if v}))
        object.__setattr__(self, "extra", _frozen(self.extra))

    @property
    def count(self) -> int:
        """Rows in the file."""
        return sum(self.rows.values())

    @property
    def source(self) -> str:
        """The sources joined with ``+`` in :data:`GOLDEN_SOURCES` order (e.g. ``"studies+calibration"``)."""
        return "+".join(s for s in GOLDEN_SOURCES if self.rows.get(s)) or "none"

    @property
    def random(self) -> bool:
        """Whether any row is random (not a preprocessed study)."""
        return bool(self.rows.get("random"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {
            "file": self.file,
            "rows": dict(self.rows),
            "reference": self.reference,
            "written_by": self.written_by,
        }
        out.update(_plain(self.extra))
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "golden") -> GoldenRecord:
        """Parse the manifest's ``golden`` object."""
        d = _object(d, where)
        return cls(
            file=check_relative_path(_field(d, "file", where, str), f"{where}.file"),
            rows=dict(_field(d, "rows", where, Mapping, what="an object")),
            reference=_field(d, "reference", where, str),
            written_by=_field(d, "written_by", where, str),
            extra=_extra(d, cls._KNOWN),
        )


@dataclass(frozen=True, kw_only=True)
class EngineRecord:
    """A TensorRT plan built on a device, cached in the bundle under its cache ``key``.

    ``file`` and ``sha256`` may be left empty when the record is handed to
    :func:`~medfuse.bundle.update_bundle`, which fills them in from the plan it copies.
    """

    key: str
    variant: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    file: str = ""
    sha256: str = ""
    dla_core: int | None = None
    profile: Mapping[str, Any] = field(default_factory=dict)
    builder_optimization_level: int = 3
    version_compatible: bool = False
    cuda_version: str | None = None
    driver_version: str | None = None
    jetpack: str | None = None
    built_at: str = field(default_factory=_utc_now)
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = (
        "key",
        "file",
        "sha256",
        "variant",
        "tensorrt_version",
        "gpu_name",
        "compute_capability",
        "dla_core",
        "profile",
        "builder_optimization_level",
        "version_compatible",
        "cuda_version",
        "driver_version",
        "jetpack",
        "built_at",
    )

    def __post_init__(self) -> None:
        check_engine_key(self.key, "engines")
        where = f"engines[{self.key!r}]"
        check_precision(self.variant, f"{where}.variant")
        if self.file:
            check_relative_path(self.file, f"{where}.file")
        if self.sha256:
            _sha(self.sha256, f"{where}.sha256")
        if not _CC_RE.match(self.compute_capability):
            raise ManifestError(
                f"{where}.compute_capability: {self.compute_capability!r} is not of the form "
                "'MAJOR.MINOR' (e.g. '8.7')"
            )
        if self.dla_core is not None and (isinstance(self.dla_core, bool) or self.dla_core < 0):
            raise ManifestError(f"{where}.dla_core: {self.dla_core!r} must be null or >= 0")
        if not 0 <= self.builder_optimization_level <= 5:
            raise ManifestError(
                f"{where}.builder_optimization_level: {self.builder_optimization_level} "
                "must be between 0 and 5"
            )
        object.__setattr__(self, "profile", _frozen(self.profile))
        object.__setattr__(self, "extra", _frozen(self.extra))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the key is the mapping key it is stored under)."""
        out: dict[str, Any] = {
            "file": self.file,
            "sha256": self.sha256,
            "variant": self.variant,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "dla_core": self.dla_core,
            "profile": _plain(self.profile),
            "builder_optimization_level": self.builder_optimization_level,
            "version_compatible": self.version_compatible,
            "cuda_version": self.cuda_version,
            "driver_version": self.driver_version,
            "jetpack": self.jetpack,
            "built_at": self.built_at,
        }
        out.update(_plain(self.extra))
        return out

    @classmethod
    def from_dict(cls, key: str, d: Any) -> EngineRecord:
        """Parse the entry stored under ``engines[key]``."""
        check_engine_key(key, "engines")
        where = f"engines[{key!r}]"
        d = _object(d, where)
        return cls(
            key=key,
            file=check_relative_path(_field(d, "file", where, str), f"{where}.file"),
            sha256=_sha(_field(d, "sha256", where, str), f"{where}.sha256"),
            variant=check_precision(_field(d, "variant", where, str), f"{where}.variant"),
            tensorrt_version=_field(d, "tensorrt_version", where, str),
            gpu_name=_field(d, "gpu_name", where, str),
            compute_capability=_field(d, "compute_capability", where, str),
            dla_core=_field(d, "dla_core", where, int, required=False),
            profile=_field(
                d, "profile", where, Mapping, required=False, default={}, what="an object"
            )
            or {},
            builder_optimization_level=_field(
                d, "builder_optimization_level", where, int, required=False, default=3
            ),
            version_compatible=_field(
                d, "version_compatible", where, bool, required=False, default=False
            ),
            cuda_version=_field(d, "cuda_version", where, str, required=False),
            driver_version=_field(d, "driver_version", where, str, required=False),
            jetpack=_field(d, "jetpack", where, str, required=False),
            built_at=_field(d, "built_at", where, str),
            extra=_extra(d, cls._KNOWN),
        )


@dataclass(frozen=True)
class Provenance:
    """Where a bundle came from: tool versions, ONNX opset, training config hash, date."""

    medfuse_version: str = __version__
    created_at: str = field(default_factory=_utc_now)
    torch_version: str | None = None
    onnx_version: str | None = None
    opset: int | None = None
    training_config_hash: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = (
        "medfuse_version",
        "created_at",
        "torch_version",
        "onnx_version",
        "opset",
        "training_config_hash",
    )

    def __post_init__(self) -> None:
        if self.opset is not None and (isinstance(self.opset, bool) or self.opset < 1):
            raise ManifestError(f"provenance.opset: {self.opset!r} must be a positive integer")
        object.__setattr__(self, "extra", _frozen(self.extra))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {k: getattr(self, k) for k in self._KNOWN}
        out.update(_plain(self.extra))
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "provenance") -> Provenance:
        """Parse the manifest's ``provenance`` object."""
        d = _object(d, where)
        return cls(
            medfuse_version=_field(d, "medfuse_version", where, str),
            created_at=_field(d, "created_at", where, str),
            torch_version=_field(d, "torch_version", where, str, required=False),
            onnx_version=_field(d, "onnx_version", where, str, required=False),
            opset=_field(d, "opset", where, int, required=False),
            training_config_hash=_field(d, "training_config_hash", where, str, required=False),
            extra=_extra(d, cls._KNOWN),
        )


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The parsed ``manifest.json`` of a bundle.

    ``artifacts`` maps every file of the bundle except the manifest (variants, engines,
    ``golden.npz``, reports, timing caches) to its sha256. ``extra`` holds top-level fields this
    medfuse does not know; they are written back unchanged.
    """

    model: ModelSpec
    variants: Mapping[str, Variant]
    provenance: Provenance
    artifacts: Mapping[str, str] = field(default_factory=dict)
    engines: Mapping[str, EngineRecord] = field(default_factory=dict)
    golden: GoldenRecord | None = None
    schema_version: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for precision, variant in self.variants.items():
            if variant.precision != precision:
                raise ManifestError(
                    f"variants[{precision!r}]: holds a variant of precision {variant.precision!r}"
                )
            listed = self.artifacts.get(variant.file)
            if listed is not None and listed != variant.sha256:
                raise ManifestError(
                    f"variants[{precision!r}].sha256: differs from artifacts[{variant.file!r}]"
                )
        for key, engine in self.engines.items():
            where = f"engines[{key!r}]"
            if engine.key != key:
                raise ManifestError(f"{where}: holds an engine record keyed {engine.key!r}")
            if not engine.file or not engine.sha256:
                raise ManifestError(f"{where}: file and sha256 are required in a manifest")
            if engine.variant not in self.variants:
                raise ManifestError(
                    f"{where}.variant: {engine.variant!r} is not a variant of this bundle "
                    f"(variants: {', '.join(self.variants) or 'none'})"
                )
            listed = self.artifacts.get(engine.file)
            if listed is not None and listed != engine.sha256:
                raise ManifestError(f"{where}.sha256: differs from artifacts[{engine.file!r}]")
        for rel, sha in self.artifacts.items():
            check_relative_path(rel, "artifacts")
            _sha(sha, f"artifacts[{rel!r}]")
        object.__setattr__(self, "variants", _frozen(self.variants))
        object.__setattr__(self, "engines", _frozen(self.engines))
        object.__setattr__(self, "artifacts", _frozen(self.artifacts))
        object.__setattr__(self, "extra", _frozen(self.extra))

    @property
    def golden_source(self) -> str:
        """Where ``golden.npz``'s rows came from: the golden record's source, else (a bundle
        written before the record) what the provenance says, else ``"unknown"``."""
        if self.golden is not None:
            return self.golden.source
        said = self.provenance.extra.get("golden_source")
        return said if said in GOLDEN_SOURCES else "unknown"

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, unknown top-level fields included."""
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "model": self.model.to_dict(),
            "variants": {p: v.to_dict() for p, v in self.variants.items()},
            "engines": {k: e.to_dict() for k, e in self.engines.items()},
            "artifacts": dict(sorted(self.artifacts.items())),
            "provenance": self.provenance.to_dict(),
        }
        if self.golden is not None:
            out["golden"] = self.golden.to_dict()
        out.update(_plain(self.extra))
        return out

    def to_json(self) -> str:
        """The manifest as pretty-printed JSON text, with a trailing newline."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        """Parse and validate a manifest document.

        Raises
        ------
        ManifestError
            A field is missing, of the wrong type or out of its set; the message names it.
        IncompatibleBundleError
            ``schema_version`` is newer than this medfuse supports.
        """
        d = _object(d, "manifest")
        _check_schema_version(d)
        model_raw = _field(d, "model", "manifest", Mapping, what="an object")
        try:
            model = ModelSpec.from_dict(model_raw, "model")
        except ManifestError as exc:
            msg = str(exc)
            if not msg.startswith("model"):
                msg = f"model.{msg}"
            raise ManifestError(msg) from exc
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"model: invalid model spec ({exc})") from exc
        variants_raw = _field(d, "variants", "manifest", Mapping, what="an object")
        engines_raw = (
            _field(d, "engines", "manifest", Mapping, required=False, default={}, what="an object")
            or {}
        )
        artifacts_raw = _field(d, "artifacts", "manifest", Mapping, what="an object")
        return cls(
            schema_version=d["schema_version"],
            model=model,
            variants={p: Variant.from_dict(p, v) for p, v in variants_raw.items()},
            engines={k: EngineRecord.from_dict(k, e) for k, e in engines_raw.items()},
            artifacts={
                check_relative_path(rel, "artifacts"): _sha(sha, f"artifacts[{rel!r}]")
                for rel, sha in artifacts_raw.items()
            },
            provenance=Provenance.from_dict(
                _field(d, "provenance", "manifest", Mapping, what="an object")
            ),
            golden=None if d.get("golden") is None else GoldenRecord.from_dict(d["golden"]),
            extra=_extra(d, _TOP_KEYS),
        )

    @classmethod
    def from_json(cls, text: str | bytes, source: str = MANIFEST_NAME) -> Manifest:
        """Parse manifest JSON text; ``source`` names it in error messages.

        The text is read within :data:`~medfuse.bundle.limits.MANIFEST_LIMITS` (size, nesting,
        number length, no repeated keys): a hostile manifest is a :class:`ManifestError`.
        """
        data = load_json(text, source=source, error=ManifestError, limits=MANIFEST_LIMITS)
        return cls.from_dict(data)


def _check_schema_version(d: Mapping[str, Any]) -> None:
    if "schema_version" not in d:
        raise ManifestError(
            "schema_version: required field is missing; this is not a medfuse manifest or it "
            "predates schema version 1 — re-export the bundle"
        )
    version = d["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise ManifestError(
            f"schema_version: expected int, got {type(version).__name__} {shown(version)}"
        )
    if version > SCHEMA_VERSION:
        prov = d.get("provenance")
        writer = prov.get("medfuse_version") if isinstance(prov, Mapping) else None
        if not (isinstance(writer, str) and _VERSION_RE.match(writer)):
            writer = None  # only a plain version string is echoed
        need = f"medfuse>={writer}" if writer else "a newer medfuse"
        raise IncompatibleBundleError(
            f"schema_version: the bundle uses manifest schema {version}, but medfuse "
            f"{__version__} reads schema {SCHEMA_VERSION} at most; install {need} "
            f"(pip install -U 'medfuse{'>=' + writer if writer else ''}')"
        )
    if version < SCHEMA_VERSION:
        raise ManifestError(
            f"schema_version: {version} is older than the oldest supported schema "
            f"({SCHEMA_VERSION}); re-export the bundle with this medfuse"
        )
