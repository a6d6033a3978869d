"""Where the reference bundle shipped with medfuse lives."""

from __future__ import annotations

from pathlib import Path

import medfuse
from medfuse.errors import BundleError

__all__ = ["reference_bundle_path"]


def reference_bundle_path() -> Path:
    """The path of the reference bundle shipped inside the package (``medfuse/data/reference.medfuse``).

    Returns
    -------
    Path
        The bundle directory.

    Raises
    ------
    BundleError
        The reference bundle is not installed with this copy of medfuse.
    """
    path = Path(medfuse.__file__).parent / "data" / "reference.medfuse"
    if not (path / "manifest.json").is_file():
        raise BundleError(
            "the reference bundle (medfuse/data/reference.medfuse) is not installed with this "
            "copy of medfuse; give a bundle path explicitly, or create one with "
            "`medfuse train` and `medfuse export`"
        )
    return path
