"""The device catalog: what medfuse knows about each target, loaded from ``catalog.json``.

The catalog is data, not code: one JSON file shipped in the package lists the Jetson modules
and GPUs medfuse targets (compute capability, memory and whether the CPU shares it, DLA cores,
precisions that pay off, build defaults) and the JetPack → L4T / CUDA / TensorRT / Python table.
Fields not confirmed in a primary source are named in each record's ``uncertain`` list.

Only stdlib here: this module is part of the runtime tier.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from medfuse.errors import ManifestError

__all__ = [
    "BuildDefaults",
    "Catalog",
    "CatalogEntry",
    "JetPackRelease",
    "load_catalog",
]

Family = Literal["jetson", "datacenter", "consumer"]
_FAMILIES = ("jetson", "datacenter", "consumer")
_CC_RE = re.compile(r"^\d+\.\d+$")


def _req(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ManifestError(f"device catalog {where}: field {key!r} is missing")
    return d[key]


@dataclass(frozen=True)
class BuildDefaults:
    """Engine build settings that fit a device (workspace keeps Jetson builds within memory)."""

    workspace_mib: int
    builder_optimization_level: int
    batch_sizes: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace_mib": self.workspace_mib,
            "builder_optimization_level": self.builder_optimization_level,
            "batch_sizes": list(self.batch_sizes),
        }


@dataclass(frozen=True)
class CatalogEntry:
    """One device the catalog knows.

    ``match`` holds substrings of the name the device reports (``nvidia-smi`` name or Jetson
    ``/proc/device-tree/model``); several entries may share a pattern (Orin NX 8 GB / 16 GB)
    and are told apart by memory.
    """

    key: str
    name: str
    family: Family
    soc: str | None
    match: tuple[str, ...]
    compute_capability: str
    memory_gib: int
    memory_shared: bool
    dla_cores: int
    precisions: tuple[str, ...]
    build_defaults: BuildDefaults
    jetpacks: tuple[str, ...]
    notes: str = ""
    uncertain: tuple[str, ...] = ()

    @property
    def is_jetson(self) -> bool:
        return self.family == "jetson"

    @property
    def sm(self) -> str:
        """The compute capability as an ``sm`` tag, e.g. ``"sm87"``."""
        return "sm" + self.compute_capability.replace(".", "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "family": self.family,
            "soc": self.soc,
            "match": list(self.match),
            "compute_capability": self.compute_capability,
            "memory_gib": self.memory_gib,
            "memory_shared": self.memory_shared,
            "dla_cores": self.dla_cores,
            "precisions": list(self.precisions),
            "build_defaults": self.build_defaults.to_dict(),
            "jetpacks": list(self.jetpacks),
            "notes": self.notes,
            "uncertain": list(self.uncertain),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CatalogEntry:
        where = f"devices[{d.get('key', '?')!r}]"
        family = _req(d, "family", where)
        if family not in _FAMILIES:
            raise ManifestError(f"device catalog {where}.family: {family!r} not in {_FAMILIES}")
        cc = str(_req(d, "compute_capability", where))
        if not _CC_RE.match(cc):
            raise ManifestError(f"device catalog {where}.compute_capability: {cc!r} is not 'X.Y'")
        bd = _req(d, "build_defaults", where)
        return cls(
            key=str(_req(d, "key", where)),
            name=str(_req(d, "name", where)),
            family=family,
            soc=d.get("soc"),
            match=tuple(str(m) for m in _req(d, "match", where)),
            compute_capability=cc,
            memory_gib=int(_req(d, "memory_gib", where)),
            memory_shared=bool(_req(d, "memory_shared", where)),
            dla_cores=int(_req(d, "dla_cores", where)),
            precisions=tuple(str(p) for p in _req(d, "precisions", where)),
            build_defaults=BuildDefaults(
                workspace_mib=int(_req(bd, "workspace_mib", where)),
                builder_optimization_level=int(_req(bd, "builder_optimization_level", where)),
                batch_sizes=tuple(int(b) for b in _req(bd, "batch_sizes", where)),
            ),
            jetpacks=tuple(str(j) for j in d.get("jetpacks", ())),
            notes=str(d.get("notes", "")),
            uncertain=tuple(str(u) for u in d.get("uncertain", ())),
        )


@dataclass(frozen=True)
class JetPackRelease:
    """One JetPack release: its L4T version and the CUDA / TensorRT / Python it ships.

    ``tensorrt_optional`` is a TensorRT installable on top (TensorRT 11.4.1's SBSA build on
    JetPack 7.2.2+) for the devices in ``tensorrt_optional_devices``.
    """

    jetpack: str
    l4t: str | None
    ubuntu: str
    python: str
    cuda: str
    cudnn: str
    tensorrt: str
    modules: tuple[str, ...]
    uncertain: tuple[str, ...] = ()
    tensorrt_optional: str | None = None
    tensorrt_optional_devices: tuple[str, ...] = ()
    tensorrt_optional_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "jetpack": self.jetpack,
            "l4t": self.l4t,
            "ubuntu": self.ubuntu,
            "python": self.python,
            "cuda": self.cuda,
            "cudnn": self.cudnn,
            "tensorrt": self.tensorrt,
            "modules": list(self.modules),
            "uncertain": list(self.uncertain),
            "tensorrt_optional": self.tensorrt_optional,
            "tensorrt_optional_devices": list(self.tensorrt_optional_devices),
            "tensorrt_optional_note": self.tensorrt_optional_note,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JetPackRelease:
        where = f"jetpack[{d.get('jetpack', '?')!r}]"
        return cls(
            jetpack=str(_req(d, "jetpack", where)),
            l4t=None if d.get("l4t") is None else str(d["l4t"]),
            ubuntu=str(_req(d, "ubuntu", where)),
            python=str(_req(d, "python", where)),
            cuda=str(_req(d, "cuda", where)),
            cudnn=str(_req(d, "cudnn", where)),
            tensorrt=str(_req(d, "tensorrt", where)),
            modules=tuple(str(m) for m in _req(d, "modules", where)),
            uncertain=tuple(str(u) for u in d.get("uncertain", ())),
            tensorrt_optional=d.get("tensorrt_optional"),
            tensorrt_optional_devices=tuple(d.get("tensorrt_optional_devices", ())),
            tensorrt_optional_note=str(d.get("tensorrt_optional_note", "")),
        )


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v))


@dataclass(frozen=True)
class Catalog:
    """The whole catalog: devices and the JetPack table."""

    devices: tuple[CatalogEntry, ...]
    jetpack: tuple[JetPackRelease, ...]

    def entry(self, key: str) -> CatalogEntry:
        """The entry called ``key``; a ManifestError lists the known keys otherwise."""
        for e in self.devices:
            if e.key == key:
                return e
        known = ", ".join(e.key for e in self.devices)
        raise ManifestError(f"unknown device {key!r}; the catalog knows: {known}")

    def jetpack_release(self, jetpack: str) -> JetPackRelease | None:
        """The JetPack release ``jetpack`` (``"6.2"``), or ``None``."""
        return next((r for r in self.jetpack if r.jetpack == jetpack), None)

    def jetpack_for_l4t(self, l4t: str) -> JetPackRelease | None:
        """The JetPack release shipping L4T ``l4t`` (e.g. ``"36.4.3"`` → JetPack 6.2).

        An exact match wins; otherwise the newest release with the same major.minor and a
        revision not above ``l4t`` (``36.4.7`` → the 36.4.x line's newest known release).
        """
        exact = next((r for r in self.jetpack if r.l4t == l4t), None)
        if exact is not None:
            return exact
        want = _version_tuple(l4t)
        same_line = [
            r for r in self.jetpack
            if r.l4t is not None
            and _version_tuple(r.l4t)[:2] == want[:2]
            and _version_tuple(r.l4t) <= want
        ]
        return max(same_line, key=lambda r: _version_tuple(r.l4t or "0"), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "devices": [e.to_dict() for e in self.devices],
            "jetpack": [r.to_dict() for r in self.jetpack],
        }


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    """Build a :class:`Catalog` from the parsed JSON document."""
    devices = tuple(CatalogEntry.from_dict(d) for d in _req(data, "devices", "root"))
    releases = tuple(JetPackRelease.from_dict(r) for r in _req(data, "jetpack", "root"))
    keys = [d.key for d in devices]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ManifestError(f"device catalog: duplicate device keys {dup}")
    return Catalog(devices=devices, jetpack=releases)


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with medfuse (``medfuse/devices/catalog.json``), parsed once."""
    text = resources.files("medfuse.devices").joinpath("catalog.json").read_text("utf-8")
    return parse_catalog(json.loads(text))
