"""Copy the installed ``tensorrt-stubs`` into ``typings/`` with the fixes mypy needs.

The stubs package ships no ``py.typed`` and its ``.pyi`` has two syntax errors (a parameter named
``in``; a required parameter after defaulted ones in ``add_scale_nd``). mypy reads the patched
copy through ``mypy_path = "typings"`` (pyproject.toml), so the TensorRT adapter is checked against
the real API surface. Run it after ``pip install --no-deps tensorrt-stubs`` (``.ci/run`` does).
"""

from __future__ import annotations

import re
import shutil
import sys
import sysconfig
from pathlib import Path


def main() -> int:
    src = Path(sysconfig.get_paths()["purelib"])
    dst = Path(__file__).resolve().parent.parent / "typings"
    if not (src / "tensorrt_bindings" / "tensorrt.pyi").exists():
        print("tensorrt-stubs is not installed: pip install --no-deps tensorrt-stubs", file=sys.stderr)
        return 1
    for pkg in ("tensorrt", "tensorrt_bindings"):
        shutil.rmtree(dst / pkg, ignore_errors=True)
        shutil.copytree(src / pkg, dst / pkg, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
        (dst / pkg / "py.typed").touch()
    pyi = dst / "tensorrt_bindings" / "tensorrt.pyi"
    text = pyi.read_text()
    text = re.sub(r"\(self(: \w+)?, in: ", lambda m: f"(self{m.group(1) or ''}, in_: ", text)
    text = text.replace(
        "power: Weights = None, channel_axis: int)", "power: Weights = None, channel_axis: int = ...)"
    )
    pyi.write_text(text)
    print(f"patched tensorrt stubs written to {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
