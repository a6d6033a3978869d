"""The shipped reference bundle's location."""

from __future__ import annotations

from pathlib import Path

import pytest

import medfuse
from medfuse.bundle import open_bundle, reference_bundle_path
from medfuse.errors import BundleError

SHIPPED = Path(medfuse.__file__).parent / "data" / "reference.medfuse"


def test_reference_bundle_path() -> None:
    if (SHIPPED / "manifest.json").is_file():
        assert reference_bundle_path() == SHIPPED
        assert open_bundle(reference_bundle_path()).verify().ok
    else:
        with pytest.raises(BundleError, match=r"reference bundle .* is not installed"):
            reference_bundle_path()
