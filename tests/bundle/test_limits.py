"""Bounded manifest parsing: hostile manifests are a ManifestError naming the limit, never a
traceback (RecursionError, ValueError) or unbounded memory."""

from __future__ import annotations

import pytest

from medfuse.bundle import Bundle, open_bundle
from medfuse.bundle.limits import MANIFEST_LIMITS, JsonLimits, load_json, max_nesting, shown
from medfuse.errors import ManifestError

HOSTILE = {
    "deep": ("[" * 200_000, "nested 200000 levels deep, more than the 32 allowed"),
    "huge-number": (
        '{"schema_version": ' + "9" * 5001 + "}",
        "a number of 5001 characters is longer than the 24 allowed",
    ),
    "huge-float": ('{"x": 1e999}', "out of range"),
    "nan": ('{"x": NaN}', "NaN is not a JSON number"),
    "repeated-key": ('{"schema_version": 1, "schema_version": 1}', "appears twice"),
    "too-large": (" " * (MANIFEST_LIMITS.max_bytes + 1), "larger than"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_manifest_on_disk_is_a_manifest_error(bundle: Bundle, case: str) -> None:
    text, message = HOSTILE[case]
    (bundle.path / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match=rf"bundle tiny\.medfuse: manifest\.json.*{message}"):
        open_bundle(bundle.path)


def test_brackets_inside_strings_do_not_count() -> None:
    doc = '{"description": "' + "[" * 1000 + '", "x": [[1]]}'
    assert max_nesting(doc.encode()) == 3
    assert load_json(doc, source="m", error=ManifestError, limits=MANIFEST_LIMITS)["x"] == [[1]]


def test_escaped_quotes_do_not_end_a_string() -> None:
    assert max_nesting(b'{"a": "\\"[[[[", "b": []}') == 2


def test_limits_are_parameters() -> None:
    small = JsonLimits(max_bytes=100, max_depth=2, max_number_chars=3)
    assert load_json("[[123]]", source="d", error=ManifestError, limits=small) == [[123]]
    with pytest.raises(ManifestError, match="a number of 4 characters"):
        load_json("[1234]", source="d", error=ManifestError, limits=small)
    with pytest.raises(ManifestError, match="nested 3 levels"):
        load_json("[[[1]]]", source="d", error=ManifestError, limits=small)


def test_echoed_values_are_bounded() -> None:
    assert len(shown("x" * 10_000)) == 60
    assert shown(list(range(10_000))) == "an array of 10000 item(s)"
    assert shown({"a": 1}) == "an object of 1 field(s)"


def test_wrong_type_message_does_not_echo_a_large_value(bundle: Bundle) -> None:
    import json

    doc = json.loads((bundle.path / "manifest.json").read_text())
    doc["schema_version"] = "1" * 100_000
    (bundle.path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="schema_version: expected int") as info:
        open_bundle(bundle.path)
    assert len(str(info.value)) < 300
