"""PyTorch → ONNX with a dynamic batch axis, graph cleanup, checker and shape inference.

:func:`export_onnx` tries the ``torch.export``-based exporter first (``dynamo=True``) and
falls back to the TorchScript exporter (``dynamo=False`` with ``dynamic_axes``) when it fails
for a model; either way the graph is cleaned (constant folding and dead-code elimination by
onnxscript's optimizer), checked with ``onnx.checker`` and shape inference, and its inputs and
outputs are named after the spec.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfuse._deps import require
from medfuse.bundle.spec import BATCH, ModelSpec
from medfuse.errors import ExportError
from medfuse.export.failures import full_text, root_cause
from medfuse.export.inputs import random_inputs

__all__ = ["DEFAULT_OPSET", "OnnxExport", "export_onnx"]

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18
_MIN_OPSET = 17
_EXAMPLE_BATCH = 2  # not 1: torch.export specialises size-1 dimensions


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` produced."""

    path: Path
    exporter: str
    opset: int
    seconds: float
    nodes: int
    fallback_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "exporter": self.exporter,
            "opset": self.opset,
            "seconds": round(self.seconds, 3),
            "nodes": self.nodes,
            "fallback_reason": self.fallback_reason,
        }


def _example_args(spec: ModelSpec) -> tuple[Any, ...]:
    torch = require("torch", purpose="ONNX export")
    arrays = random_inputs(spec, _EXAMPLE_BATCH, seed=0)
    return tuple(torch.from_numpy(arrays[i.name]) for i in spec.inputs)


def _quiet_export(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an exporter call with its warnings and log chatter routed to our debug log."""
    chatty = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [log.level for log in chatty]
    for log in chatty:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn(*args, **kwargs)
    finally:
        for log, level in zip(chatty, levels, strict=True):
            log.setLevel(level)
    for w in caught:
        logger.debug("exporter warning (%s): %s", w.category.__name__, str(w.message)[:300])
    return result


def _export_dynamo(
    module: Any, spec: ModelSpec, args: tuple[Any, ...], path: Path, opset: int
) -> None:
    torch = require("torch", purpose="ONNX export")
    batch = torch.export.Dim(BATCH, min=1, max=65536)
    # A torch.export archive is exported as the program it is (its own dynamic axes).
    exported = getattr(module, "exported_program", None)
    program = _quiet_export(
        torch.onnx.export,
        module if exported is None else exported,
        args,
        dynamo=True,
        opset_version=opset,
        dynamic_shapes=None if exported is not None else tuple({0: batch} for _ in spec.inputs),
        input_names=[i.name for i in spec.inputs],
        output_names=[o.name for o in spec.outputs],
        optimize=True,
        verbose=False,
    )
    if program is None:
        raise RuntimeError("the dynamo exporter returned no program")
    program.save(str(path), external_data=False)


def _export_torchscript(
    module: Any, spec: ModelSpec, args: tuple[Any, ...], path: Path, opset: int
) -> None:
    torch = require("torch", purpose="ONNX export")
    names = [i.name for i in spec.inputs] + [o.name for o in spec.outputs]
    _quiet_export(
        torch.onnx.export,
        module,
        args,
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=[i.name for i in spec.inputs],
        output_names=[o.name for o in spec.outputs],
        dynamic_axes={n: {0: BATCH} for n in names},
        do_constant_folding=True,
    )


def cleanup_graph(model: Any) -> Any:
    """Constant folding + dead-code elimination with onnxscript's optimizer (no-op if it fails)."""
    try:
        optimizer = require("onnxscript.optimizer", purpose="ONNX graph cleanup")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optimizer.optimize(model)
    except Exception as exc:  # the optimizer is best-effort; the graph stays valid without it
        logger.warning("graph cleanup skipped: %s: %s", type(exc).__name__, str(exc)[:200])
        return model


def _check_io(model: Any, spec: ModelSpec) -> None:
    got_in = [v.name for v in model.graph.input]
    got_out = [v.name for v in model.graph.output]
    want_in = [i.name for i in spec.inputs]
    want_out = [o.name for o in spec.outputs]
    if got_in != want_in or got_out != want_out:
        raise ExportError(
            f"exported graph has inputs {got_in} and outputs {got_out}; the spec names inputs "
            f"{want_in} and outputs {want_out} — make forward() take and return tensors in the "
            "spec's order"
        )
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            raise ExportError(
                f"exported tensor {value.name!r} has a fixed batch size {dims[0].dim_value}; the "
                "export needs a dynamic batch axis (avoid reshapes that hard-code the batch)"
            )


def export_onnx(
    module: Any,
    spec: ModelSpec,
    path: Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamo: bool = True,
) -> OnnxExport:
    """Export ``module`` to ``path`` as ONNX with a dynamic batch axis.

    Parameters
    ----------
    module:
        A ``torch.nn.Module`` whose ``forward`` takes ``spec``'s inputs in order and returns
        its outputs in order (one tensor or a tuple). It is put in eval mode.
    spec:
        The model's spec; gives input/output names, shapes and dtypes.
    path:
        Where the ``.onnx`` file goes (weights embedded, no external data).
    opset:
        ONNX opset, at least 17.
    dynamo:
        Try the ``torch.export`` exporter first (the TorchScript exporter is the fallback).

    Returns
    -------
    OnnxExport
        The exporter used, its time, the node count and why a fallback happened.

    Raises
    ------
    ExportError
        When both exporters fail, the checker rejects the graph, or the graph's names or batch
        axis do not match the spec.
    """
    onnx = require("onnx", purpose="ONNX export")
    torch = require("torch", purpose="ONNX export")
    if opset < _MIN_OPSET:
        raise ExportError(
            f"opset {opset} is too old; use {_MIN_OPSET} or newer (default {DEFAULT_OPSET})"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        module.eval()
    except Exception as exc:
        raise ExportError(
            f"the model cannot be put in eval mode: {root_cause(exc)}; give an nn.Module"
        ) from exc
    args = _example_args(spec)
    start = time.perf_counter()
    exporter, fallback = "dynamo", None
    with torch.no_grad():
        try:
            if not dynamo:
                raise RuntimeError("dynamo exporter not requested")
            _export_dynamo(module, spec, args, path, opset)
        except Exception as exc:
            fallback = root_cause(exc)
            if dynamo:
                logger.info("dynamo exporter's full error:\n%s", full_text(exc))
                logger.warning(
                    "dynamo export failed (%s); falling back to the TorchScript exporter", fallback
                )
            exporter = "torchscript"
            try:
                _export_torchscript(module, spec, args, path, opset)
            except Exception as exc2:
                logger.info("TorchScript exporter's full error:\n%s", full_text(exc2))
                raise ExportError(
                    f"ONNX export failed with both exporters. Root cause — dynamo "
                    f"(torch.export): {fallback}; torchscript: {root_cause(exc2)}. "
                    "Run with -v for the exporters' full text"
                ) from exc2
    model = onnx.load(str(path))
    if exporter == "torchscript":
        model = cleanup_graph(model)
    try:
        onnx.checker.check_model(model, full_check=False)
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        raise ExportError(
            f"the exported ONNX graph is invalid: {type(exc).__name__}: {str(exc)[:400]}"
        ) from exc
    _check_io(model, spec)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    onnx.save(model, str(path))
    seconds = time.perf_counter() - start
    logger.info(
        "exported %s with %s exporter, opset %d, %d nodes, %.1f s",
        spec.name,
        exporter,
        opset,
        len(model.graph.node),
        seconds,
    )
    return OnnxExport(path, exporter, opset, seconds, len(model.graph.node), fallback)
