"""``medfuse devices`` end to end in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medfuse.cli.main", "devices", *args],
                          capture_output=True, text=True, timeout=60)


def test_devices_json() -> None:
    out = _run("--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    keys = {e["key"] for e in doc["catalog"]}
    assert {"jetson-agx-orin-64gb", "jetson-thor", "h100", "tesla-t4"} <= keys
    assert doc["detected"]["kind"] in ("cpu", "gpu", "jetson")
    assert {r["jetpack"] for r in doc["jetpack"]} >= {"5.1", "6.2", "7.2"}


def test_devices_table() -> None:
    out = _run()
    assert out.returncode == 0, out.stderr
    assert "detected here" in out.stdout and "AGX Orin" in out.stdout
