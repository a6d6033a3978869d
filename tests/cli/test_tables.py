"""The CLI's one table renderer: fits the width, abbreviates with a legend, never cuts keys."""

from __future__ import annotations

import pytest

from medfuse.cli.tables import Column, render_table

_COLS = (
    Column("device key", key=True),
    Column("description", wrap=True),
    Column("throughput/s", "it/s", "items per second", right=True),
    Column("notes", drop=1),
)
_ROWS = [
    ["jetson-orin-nano-8gb", "NVIDIA Jetson Orin Nano 8GB developer kit module", "1234.5", "x"],
    ["a100-80gb", "NVIDIA A100 80GB PCIe", "99.0", "y"],
]


def test_wide_terminal_shows_everything_unabbreviated() -> None:
    text = render_table(_COLS, _ROWS, width=200)
    assert "throughput/s" in text and "legend" not in text and "not shown" not in text
    assert all(len(line) <= 200 for line in text.splitlines())


@pytest.mark.parametrize("width", [40, 60, 80])
def test_narrow_terminal_fits_and_keeps_keys(width: int) -> None:
    text = render_table(_COLS, _ROWS, width=width, title="a title " * 12)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    for key in ("jetson-orin-nano-8gb", "a100-80gb"):
        assert any(line.startswith(key + " ") for line in lines), key
    assert "it/s = items per second" in " ".join(lines)


def test_dropped_columns_are_named() -> None:
    text = render_table(_COLS, _ROWS, width=40)
    assert "not shown at this width: notes" in text.replace("\n", " ")


def test_right_aligned_numbers() -> None:
    text = render_table(_COLS[2:3], [["1.5"], ["1234.5"]], width=80)
    assert text.splitlines()[2] == "         1.5"
