"""Zipped bundles: extracted once into a private cache directory keyed by the zip's sha256.

The zip may hold the bundle at its root (``manifest.json`` at the top) or inside one top-level
directory (``NAME.medfuse/manifest.json``, what ``zip -r NAME.medfuse.zip NAME.medfuse`` gives).
Members with absolute paths, ``..`` components or links are refused (zip slip). Extraction goes
to a temporary directory that is renamed into place, so concurrent openers never see half a
bundle.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from medfuse.bundle.integrity import sha256_file
from medfuse.bundle.manifest import MANIFEST_NAME
from medfuse.errors import BundleError

__all__ = ["bundle_cache_dir", "extract_zip_bundle"]

logger = logging.getLogger(__name__)


def bundle_cache_dir() -> Path:
    """Where zipped bundles are extracted: ``$MEDFUSE_CACHE_DIR/bundles`` or
    ``$XDG_CACHE_HOME/medfuse/bundles`` (default ``~/.cache/medfuse/bundles``)."""
    if env := os.environ.get("MEDFUSE_CACHE_DIR"):
        return Path(env).expanduser() / "bundles"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "medfuse" / "bundles"


def _check_member(info: zipfile.ZipInfo, label: str) -> None:
    name = info.filename
    parts = PurePosixPath(name).parts
    is_link = stat.S_ISLNK(info.external_attr >> 16)
    if name.startswith("/") or "\\" in name or ".." in parts or ":" in name or is_link:
        raise BundleError(
            f"zip {label}: member {name!r} is an absolute path, leaves the "
            "bundle or is a link; refusing to extract it"
        )


def _bundle_root(tree: Path, label: str) -> Path:
    if (tree / MANIFEST_NAME).is_file():
        return tree
    subdirs = [p for p in tree.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / MANIFEST_NAME).is_file():
        return subdirs[0]
    raise BundleError(
        f"zip {label}: no {MANIFEST_NAME} at its root or in a single top-level directory; "
        "zip the NAME.medfuse directory itself"
    )


def extract_zip_bundle(zip_path: Path) -> Path:
    """Extract a zipped bundle into the cache (once) and return the bundle directory in it.

    Parameters
    ----------
    zip_path:
        The ``.zip`` file.

    Raises
    ------
    BundleError
        Not a zip, an unsafe member, no manifest inside, or the cache cannot be written.
    """
    label = zip_path.name
    if not zipfile.is_zipfile(zip_path):
        raise BundleError(
            f"{label} is a file but not a zip; a bundle is a NAME.medfuse directory or a zip of one"
        )
    digest = sha256_file(zip_path)
    cache = bundle_cache_dir()
    target = cache / digest[:32]
    if target.is_dir():
        logger.debug("zip bundle %s already extracted", digest[:12])
        return _bundle_root(target, label)
    try:
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=cache))
    except OSError as exc:
        raise BundleError(f"cannot create the bundle cache directory ({exc.strerror})") from exc
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                _check_member(info, label)
            zf.extractall(tmp)
        _bundle_root(tmp, label)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # another process won the race otherwise
                raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"zip {label}: cannot extract it ({exc})") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("extracted zip bundle %s into the cache", digest[:12])
    return _bundle_root(target, label)
