"""Small helpers around ONNX Runtime: quiet quantizer logging, CPU sessions, runs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse._deps import require

__all__ = ["cpu_session", "quiet_quantizer", "run_all"]


class _DropQuantizerNoise(logging.Filter):
    """Drops ONNX Runtime's quantizer advice printed on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (
            msg.startswith("Please consider")
            or "pre-processing before quantization" in msg
            or msg.startswith("Calibration cache")
        )


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """Silence ONNX Runtime's root-logger advice while quantizing (nothing else)."""
    root = logging.getLogger()
    flt = _DropQuantizerNoise()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def cpu_session(path: Path | str | bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session (all graph optimisations)."""
    ort = require("onnxruntime", purpose="evaluating model variants", extra="quantize")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    src = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def run_all(
    session: Any, feeds: Mapping[str, NDArray[Any]], batch: int = 8
) -> dict[str, NDArray[np.float32]]:
    """Run ``session`` over stacked ``feeds`` in batches; outputs stacked as float32."""
    names = [o.name for o in session.get_outputs()]
    n = int(next(iter(feeds.values())).shape[0])
    parts: dict[str, list[NDArray[Any]]] = {k: [] for k in names}
    wanted = {i.name for i in session.get_inputs()}
    for start in range(0, n, batch):
        chunk = {k: v[start : start + batch] for k, v in feeds.items() if k in wanted}
        for k, v in zip(names, session.run(names, chunk), strict=True):
            parts[k].append(np.asarray(v, dtype=np.float32))
    return {k: np.concatenate(v) for k, v in parts.items()}
