"""Zipped bundles: checked before anything is extracted, extracted into a content-addressed cache
that is re-verified on every open.

The zip may hold the bundle at its root (``manifest.json`` at the top) or inside one top-level
directory (``NAME.medfuse/manifest.json``, what ``zip -r NAME.medfuse.zip NAME.medfuse`` gives);
only that directory's entries are extracted.

Before any byte is extracted (:meth:`ZipBundle.open`): the central directory's declared size and
entry count are read from the end records and bounded *before* ``zipfile`` parses it; then every
entry is checked — a safe relative name (no absolute path, ``..``, backslash, drive or link), no
name twice (case-insensitively), not encrypted, within the per-entry and total size limits and
the compression-ratio limit — and ``manifest.json`` (and ``manifest.json.sig``) are read straight
from the zip, bounded, so the trust policy can decide on them alone.

The cache directory is named by the zip's sha256. It is never trusted: the manifest always comes
from the zip itself, and on every open each artifact of the cached copy is hash-checked against
that manifest; a copy that differs (edited, truncated, half deleted) is thrown away and extracted
again. Extraction goes to a temporary directory renamed into place, so a concurrent opener never
sees half a bundle.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import struct
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from medfuse.bundle.integrity import check_sha256, sha256_file
from medfuse.bundle.limits import MANIFEST_LIMITS, SMALL_DOCUMENT_LIMITS
from medfuse.bundle.manifest import MANIFEST_NAME
from medfuse.bundle.signing import SIGNATURE_NAME
from medfuse.errors import BundleError, IntegrityError

__all__ = ["ZipBundle", "ZipLimits", "bundle_cache_dir"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_GIB = 1 << 30


@dataclass(frozen=True)
class ZipLimits:
    """What a zipped bundle may hold.

    Parameters
    ----------
    max_entries:
        Entries (files and folders). A bundle has a few dozen; engines for many devices a few
        hundred.
    max_entry_bytes:
        Uncompressed size of one entry. ONNX protobufs stop at 2 GiB; external data and
        TensorRT plans of imaging models stay far below 16 GiB.
    max_total_bytes:
        Uncompressed size of all entries together.
    max_ratio:
        Uncompressed / compressed size of one entry. Weights, plans and ``npz`` files compress
        less than 2×, JSON about 10×; a run of zeros (the classic bomb) about 1000×.
    ratio_floor_bytes:
        Entries smaller than this are exempt from the ratio (a short JSON file may compress
        well and can do no harm).
    free_space_margin_bytes:
        Free space the cache's file system must keep after extraction.
    """

    max_entries: int = 10_000
    max_entry_bytes: int = 16 * _GIB
    max_total_bytes: int = 32 * _GIB
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 << 20
    free_space_margin_bytes: int = 1 * _GIB

    @property
    def max_central_directory_bytes(self) -> int:
        """Bound on the central directory: about 1 KiB per entry allowed."""
        return self.max_entries * 1024


DEFAULT_LIMITS = ZipLimits()


def bundle_cache_dir() -> Path:
    """Where zipped bundles are extracted: ``bundles`` in :func:`medfuse._paths.cache_dir`
    (``$MEDFUSE_CACHE_DIR``, default ``~/.cache/medfuse``)."""
    from medfuse._paths import cache_dir

    return cache_dir("bundles")


# -- the end records: bounded before zipfile reads the central directory ------------------------

_EOCD = struct.Struct("<4sHHHHIIH")  # signature, disks, entries here, entries, cd size, offset, comment
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")


def _declared_directory(fh: BinaryIO, label: str) -> tuple[int, int]:
    """``(entries, central directory bytes)`` as the zip's end records declare them."""
    size = fh.seek(0, os.SEEK_END)
    tail_len = min(size, _EOCD.size + 0xFFFF)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        raise BundleError(f"zip {label}: no end-of-central-directory record; the zip is damaged")
    _, _, _, _, entries, cd_size, _, _ = _EOCD.unpack_from(tail, at)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:  # ZIP64: the real numbers are further back
        loc_at = at - _ZIP64_LOCATOR.size
        if loc_at < 0 or tail[loc_at : loc_at + 4] != b"PK\x06\x07":
            raise BundleError(f"zip {label}: its ZIP64 end records are missing; the zip is damaged")
        offset = _ZIP64_LOCATOR.unpack_from(tail, loc_at)[2]
        fh.seek(offset)
        record = fh.read(_ZIP64_EOCD.size)
        if len(record) != _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
            raise BundleError(f"zip {label}: its ZIP64 end record is damaged")
        fields = _ZIP64_EOCD.unpack(record)
        entries, cd_size = fields[7], fields[8]
    return entries, cd_size


# -- the entries ---------------------------------------------------------------------------------


def _entry_name(info: zipfile.ZipInfo, label: str) -> str:
    """The entry's name, checked: a plain relative POSIX path (a folder keeps its '/')."""
    name = info.filename
    parts = name.rstrip("/").split("/")
    is_link = stat.S_ISLNK(info.external_attr >> 16)
    unsafe = (
        not name.rstrip("/")
        or name.startswith("/")
        or "\\" in name
        or ":" in name
        or "\x00" in name
        or any(p in ("", ".", "..") for p in parts)
    )
    if unsafe or is_link:
        raise BundleError(
            f"zip {label}: entry {name[:120]!r} is an absolute path, leaves the bundle or is a "
            "link; refusing to extract it"
        )
    if info.flag_bits & 0x1:
        raise BundleError(f"zip {label}: entry {name[:120]!r} is encrypted; bundles are not")
    return name


def _check_sizes(infos: list[zipfile.ZipInfo], label: str, limits: ZipLimits) -> int:
    total = 0
    for info in infos:
        size, packed = info.file_size, info.compress_size
        if size > limits.max_entry_bytes:
            raise BundleError(
                f"zip {label}: entry {info.filename[:120]!r} unpacks to {size} bytes, more than "
                f"the {limits.max_entry_bytes} allowed for one file"
            )
        if size >= limits.ratio_floor_bytes and size > limits.max_ratio * max(packed, 1):
            raise BundleError(
                f"zip {label}: entry {info.filename[:120]!r} unpacks {size / max(packed, 1):.0f}× "
                f"its packed size (at most {limits.max_ratio:g}× is allowed); this looks like a "
                "zip bomb, not a bundle"
            )
        total += size
    if total > limits.max_total_bytes:
        raise BundleError(
            f"zip {label}: unpacks to {total} bytes, more than the {limits.max_total_bytes} "
            "allowed for a bundle"
        )
    return total


def _bundle_root(names: list[str], label: str) -> str:
    """The prefix under which the bundle lies: ``""`` or ``"NAME.medfuse/"``."""
    if MANIFEST_NAME in names:
        return ""
    roots = [
        n[: -len(MANIFEST_NAME)]
        for n in names
        if n.count("/") == 1 and n.endswith("/" + MANIFEST_NAME)
    ]
    if len(roots) == 1:
        return roots[0]
    if roots:
        raise BundleError(
            f"zip {label}: holds {len(roots)} bundles; zip one NAME.medfuse directory per file"
        )
    raise BundleError(
        f"zip {label}: no {MANIFEST_NAME} at its root or in a single top-level directory; "
        "zip the NAME.medfuse directory itself"
    )


@dataclass
class ZipBundle:
    """A zipped bundle checked and opened for reading, nothing extracted yet.

    Use :meth:`open`; read :attr:`manifest_bytes` / :attr:`signature_bytes` for the trust
    decision, then :meth:`extract_verified` for the directory to use.
    """

    path: Path
    sha256: str
    root: str
    members: list[zipfile.ZipInfo]
    total_bytes: int
    manifest_bytes: bytes
    signature_bytes: bytes | None
    limits: ZipLimits

    @property
    def label(self) -> str:
        """The zip's file name, for messages."""
        return self.path.name

    @classmethod
    def open(cls, path: Path, limits: ZipLimits = DEFAULT_LIMITS) -> ZipBundle:
        """Check the zip's structure and read its manifest (and signature) entries.

        Raises
        ------
        BundleError
            Not a zip, over a limit, an unsafe or duplicate entry, or no manifest inside.
        ManifestError
            The manifest entry is larger than a manifest may be.
        """
        label = path.name
        try:
            with open(path, "rb") as fh:
                entries, cd_bytes = _declared_directory(fh, label)
        except OSError as exc:
            raise BundleError(f"zip {label}: cannot read it ({exc.strerror})") from exc
        except BundleError:
            if not zipfile.is_zipfile(path):
                raise BundleError(
                    f"{label} is a file but not a zip; a bundle is a NAME.medfuse directory or a "
                    "zip of one"
                ) from None
            raise
        if entries > limits.max_entries or cd_bytes > limits.max_central_directory_bytes:
            raise BundleError(
                f"zip {label}: declares {entries} entries ({cd_bytes} bytes of directory), more "
                f"than the {limits.max_entries} a bundle may hold"
            )
        digest = sha256_file(path)
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
                if len(infos) > limits.max_entries:
                    raise BundleError(
                        f"zip {label}: holds {len(infos)} entries, more than the "
                        f"{limits.max_entries} a bundle may hold"
                    )
                names = [_entry_name(i, label) for i in infos]
                seen: dict[str, str] = {}
                for name in names:
                    key = name.rstrip("/").casefold()
                    if key in seen:
                        raise BundleError(
                            f"zip {label}: entry {name[:120]!r} appears twice (or differs only "
                            "in case); refusing an ambiguous bundle"
                        )
                    seen[key] = name
                root = _bundle_root(names, label)
                members = [i for i in infos if i.filename.startswith(root) and i.filename != root]
                total = _check_sizes(members, label, limits)
                manifest = _read_entry(zf, root + MANIFEST_NAME, MANIFEST_LIMITS.max_bytes, label)
                sig_name = root + SIGNATURE_NAME
                signature = (
                    _read_entry(zf, sig_name, SMALL_DOCUMENT_LIMITS.max_bytes, label)
                    if sig_name in seen.values()
                    else None
                )
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
            raise BundleError(f"zip {label}: cannot read it ({exc})") from exc
        skipped = len(infos) - len(members)
        if skipped > 1:
            logger.info("zip %s: %d entries outside the bundle's folder ignored", label, skipped)
        return cls(path, digest, root, members, total, manifest, signature, limits)

    def extract_verified(self, artifacts: Mapping[str, str]) -> Path:
        """The bundle directory in the cache, holding exactly what the zip holds.

        A cached copy is used only when every artifact in ``artifacts`` (from the zip's own
        manifest) hashes as listed and its manifest equals the zip's; otherwise it is thrown
        away and the zip extracted again.

        Raises
        ------
        BundleError
            The cache cannot be written, or the zip's data is damaged.
        """
        cache = bundle_cache_dir()
        target = cache / self.sha256[:32]
        if target.is_dir():
            if self._cached_copy_matches(target, artifacts):
                logger.debug("zip bundle %s: cached copy verified", self.sha256[:12])
                return target
            logger.warning(
                "zip bundle %s: the cached copy differs from the zip; extracting it again",
                self.label,
            )
        return self._extract(cache, target)

    def _cached_copy_matches(self, target: Path, artifacts: Mapping[str, str]) -> bool:
        try:
            if (target / MANIFEST_NAME).read_bytes() != self.manifest_bytes:
                return False
            for rel, expected in artifacts.items():
                path = target / rel
                if path.is_symlink() or not path.resolve().is_relative_to(target.resolve()):
                    return False
                check_sha256(path, expected, name=rel)
        except (OSError, IntegrityError):
            return False
        return True

    def _extract(self, cache: Path, target: Path) -> Path:
        try:
            cache.mkdir(parents=True, exist_ok=True, mode=0o700)
            free = shutil.disk_usage(cache).free
        except OSError as exc:
            raise BundleError(f"cannot create the bundle cache {cache} ({exc.strerror})") from exc
        if self.total_bytes + self.limits.free_space_margin_bytes > free:
            raise BundleError(
                f"zip {self.label}: unpacking needs {self.total_bytes} bytes but the bundle cache "
                f"{cache} has {free} free; free some space or point MEDFUSE_CACHE_DIR elsewhere"
            )
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.sha256[:12]}-", dir=cache))
        try:
            with zipfile.ZipFile(self.path) as zf:
                for info in self.members:
                    _extract_member(zf, info, tmp / info.filename[len(self.root) :], self.label)
            _replace_dir(tmp, target)
        except (OSError, zipfile.BadZipFile) as exc:
            raise BundleError(f"zip {self.label}: cannot extract it ({exc})") from exc
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        logger.info("extracted zip bundle %s into the cache", self.sha256[:12])
        return target


def _read_entry(zf: zipfile.ZipFile, name: str, max_bytes: int, label: str) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > max_bytes:
        raise BundleError(
            f"zip {label}: {name[:120]!r} is {info.file_size} bytes, more than the {max_bytes} "
            "allowed; this is not a medfuse bundle"
        )
    with zf.open(info) as fh:
        return fh.read(max_bytes + 1)[:max_bytes]


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, label: str) -> None:
    if info.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, open(dest, "xb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > info.file_size:  # zipfile stops at the declared size; never trust that
                raise BundleError(
                    f"zip {label}: entry {info.filename[:120]!r} unpacks past its declared size"
                )
            out.write(chunk)


def _replace_dir(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``, moving a stale ``target`` aside first."""
    if target.exists():
        stale = target.with_name(f".{target.name}.stale-{os.getpid()}")
        try:
            os.rename(target, stale)
        except OSError:
            pass  # another process moved it already
        else:
            shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():  # another process won the race otherwise
            raise
