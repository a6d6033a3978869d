"""Optional imports, through one helper that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from medfuse.errors import MissingDependencyError

__all__ = ["is_available", "require"]

# module → (pip extra, what the module is for)
_EXTRAS: dict[str, str] = {
    "torch": "export",
    "onnx": "export",
    "onnxscript": "export",
    "onnxconverter_common": "quantize",
    "matplotlib": "plots",
    "tensorrt": "tensorrt",
    "cuda": "tensorrt",
    "pycuda": "tensorrt",
    "pynvml": "tensorrt",
}


def require(module: str, *, purpose: str = "", extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    Parameters
    ----------
    module:
        Dotted module name, e.g. ``"torch"`` or ``"cuda.bindings.runtime"``.
    purpose:
        What the caller needs it for, shown in the message ("ONNX export").
    extra:
        The pip extra that provides it; looked up from the top-level package when omitted.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".", 1)[0]
        extra = extra or _EXTRAS.get(top)
        what = f" for {purpose}" if purpose else ""
        hint = f"pip install 'medfuse[{extra}]'" if extra else f"pip install {top}"
        if top == "tensorrt":
            hint += " (on Jetson, TensorRT comes with JetPack, not pip)"
        raise MissingDependencyError(
            f"{module!r} is needed{what} but is not installed; install it with: {hint}"
        ) from exc


def is_available(module: str) -> bool:
    """Whether ``module`` can be imported (imports it)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
