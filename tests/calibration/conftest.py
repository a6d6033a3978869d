"""Session fixtures: synthetic studies split into calibration and held-out folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfuse.synthetic import generate_studies


@pytest.fixture(scope="session")
def studies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(calibration folder with 10 studies, held-out folder with 5 labelled studies)."""
    root = tmp_path_factory.mktemp("studies")
    generate_studies(root / "calib", 10, seed=21)
    generate_studies(root / "heldout", 5, seed=22)
    return root / "calib", root / "heldout"
