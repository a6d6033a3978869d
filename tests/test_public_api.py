"""The curated public API: ``__all__`` lists exactly the public names, errors form one tree."""

from __future__ import annotations

import subprocess
import sys

import pytest

import medfuse
import medfuse.errors as errors
from medfuse._deps import require
from medfuse.errors import MedfuseError, MissingDependencyError


def test_all_errors_derive_from_root_and_are_exported() -> None:
    classes = [getattr(errors, n) for n in errors.__all__]
    assert all(issubclass(c, MedfuseError) for c in classes)
    for name in errors.__all__:
        assert getattr(medfuse, name) is getattr(errors, name)
        assert name in medfuse.__all__
        assert name in (errors.__doc__ or ""), f"{name} missing from the tree in the docstring"


def test_dunder_all_is_complete() -> None:
    public = {n for n in vars(medfuse) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(medfuse.__all__)


def test_missing_dependency_names_the_extra() -> None:
    with pytest.raises(MissingDependencyError, match=r"medfuse\[tensorrt\]"):
        require("tensorrt.definitely_missing_module", purpose="engine builds")


def test_cli_unknown_verb_is_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", "frobnicate"], capture_output=True, text=True
    )
    assert out.returncode == 2
