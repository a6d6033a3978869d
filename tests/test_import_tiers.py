"""The runtime tier imports without torch or onnx (DESIGN.md: "The runtime tier never imports torch")."""

from __future__ import annotations

import json
import subprocess
import sys

# Every submodule of these packages is imported (walked), plus the top-level package itself.
RUNTIME_TIER = [
    "medfuse.bundle",
    "medfuse.runtime",
    "medfuse.devices",
    "medfuse.benchmarks",
]


def _modules_after_import(modules: list[str]) -> set[str]:
    code = (
        "import importlib, pkgutil, json, sys\n"
        "import medfuse, medfuse.errors\n"
        f"for name in {modules!r}:\n"
        "    mod = importlib.import_module(name)\n"
        "    for info in pkgutil.walk_packages(getattr(mod, '__path__', []), name + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout))


def test_runtime_tier_imports_without_torch_or_onnx() -> None:
    loaded = _modules_after_import(RUNTIME_TIER)
    heavy = {m for m in loaded if m.split(".")[0] in {"torch", "onnx", "onnxscript", "tensorrt"}}
    assert not heavy, f"runtime tier pulled in {sorted(heavy)[:5]}"
    assert "medfuse.runtime" in loaded


def test_cli_entry_imports_without_torch() -> None:
    loaded = _modules_after_import(["medfuse.cli.main"])
    assert "torch" not in loaded and "onnx" not in loaded
