"""Where ``medfuse export`` takes a model from.

Four sources, told apart without running anything the user did not ask for:

``module:factory``
    An importable callable returning a ``torch.nn.Module`` (``pkg.nets:build``), called with
    ``--factory-arg key=value`` keyword arguments (values parsed as JSON when they are JSON).
``*.pt2``
    A ``torch.export`` archive (``torch.export.save``); the ONNX graph keeps the program's own
    dynamic axes (its batch is dynamic only if it was exported with a batch ``Dim``).
TorchScript file
    ``torch.jit.save`` output (a zip with a ``code/`` folder), loaded with ``torch.jit.load``.
``medfuse train`` checkpoint
    ``model.pt`` with its own spec, config and metrics.

Only a checkpoint carries a spec; the other three need a spec file (``--spec``).
"""

from __future__ import annotations

import importlib
import json
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfuse._deps import require
from medfuse.errors import ExportError, UsageError

__all__ = ["LoadedModel", "load_model", "parse_factory_args"]


@dataclass(frozen=True)
class LoadedModel:
    """A module ready to export, and what it came from.

    ``kind`` is ``"factory"``, ``"torch.export"``, ``"torchscript"`` or ``"checkpoint"``;
    ``checkpoint`` is the :class:`~medfuse.models.checkpoint.Checkpoint` for the last.
    """

    module: Any
    kind: str
    source: str
    checkpoint: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def parse_factory_args(items: list[str] | None) -> dict[str, Any]:
    """``["depth=18", "name=x"]`` → ``{"depth": 18, "name": "x"}`` (JSON values when valid)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--factory-arg {item!r}: expected KEY=VALUE with KEY a Python name")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _is_torchscript(names: list[str]) -> bool:
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def _is_torch_export(path: Path, names: list[str]) -> bool:
    return path.suffix == ".pt2" or any("serialized_exported_program" in n for n in names)


def _from_factory(source: str, kwargs: Mapping[str, Any]) -> LoadedModel:
    torch = require("torch", purpose="ONNX export")
    module_name, _, attr = source.partition(":")
    # a factory in the current folder, as `python -m` would find it (for this import only)
    here = "" not in sys.path and "." not in sys.path
    if here:
        sys.path.insert(0, "")
    try:
        mod = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"cannot import {module_name!r} for the factory {source!r}: {exc}; put the package "
            "on PYTHONPATH or install it"
        ) from None
    finally:
        if here and "" in sys.path:
            sys.path.remove("")
    factory: Any = mod
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise UsageError(f"{module_name!r} has no attribute {attr!r} (the factory)")
    if not callable(factory):
        raise UsageError(f"{source!r} is not callable; give a function or class returning a module")
    try:
        module = factory(**kwargs)
    except Exception as exc:
        raise ExportError(
            f"the factory {source!r} failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    if not isinstance(module, torch.nn.Module):
        raise UsageError(
            f"the factory {source!r} returned {type(module).__name__}, not a torch.nn.Module"
        )
    return LoadedModel(module, "factory", source, extra={"factory_args": dict(kwargs)})


def _program_module(torch: Any, program: Any) -> Any:
    """An ``nn.Module`` calling a torch.export program's module, whose ``eval()`` / ``train()``
    torch refuses (the program is already specialised to the mode it was exported in). The
    ONNX export takes the program itself (``exported_program``), with its own dynamic axes."""
    inner = program.module()

    class ExportedProgramModule(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            object.__setattr__(self, "_inner", inner)  # not a submodule: train() stays here
            object.__setattr__(self, "exported_program", program)

        def forward(self, *args: Any) -> Any:
            return self._inner(*args)

    return ExportedProgramModule()


def load_model(source: str, factory_args: Mapping[str, Any] | None = None) -> LoadedModel:
    """Load a model from a path or ``module:factory`` (see the module docstring).

    Raises
    ------
    UsageError
        The source is neither an existing file nor an importable factory.
    ExportError
        The file or factory is one of the four kinds but could not be loaded.
    """
    path = Path(source)
    if not path.exists():
        if ":" in source and not source.startswith(("/", ".")):
            return _from_factory(source, factory_args or {})
        raise UsageError(
            f"{source}: no such file; give a .pt2 (torch.export), a TorchScript file, a "
            "`medfuse train` model.pt, or module:factory"
        )
    if factory_args:
        raise UsageError("--factory-arg applies to a module:factory source only")
    if not path.is_file():
        raise UsageError(f"{path.name}: is not a file")
    torch = require("torch", purpose="ONNX export")
    names = _zip_names(path)
    if _is_torch_export(path, names):
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ExportError(
                f"{path.name}: torch.export.load failed: {type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
        return LoadedModel(_program_module(torch, program), "torch.export", path.name)
    if _is_torchscript(names):
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ExportError(
                f"{path.name}: torch.jit.load failed: {type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
        return LoadedModel(module, "torchscript", path.name)
    from medfuse.models.checkpoint import load_checkpoint

    module, ckpt = load_checkpoint(path)
    return LoadedModel(module, "checkpoint", path.name, checkpoint=ckpt)
