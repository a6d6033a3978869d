"""Serving on GPU servers and beyond one machine: Triton Inference Server.

- :func:`~medfuse.serving.triton_repo.export_triton_repository` — a Triton model repository
  (``medfuse export-triton``): the network for Triton's ONNX Runtime or TensorRT backend, a
  Python-backend preprocessing model (study bytes → tensors) and an ensemble chaining them.
- :func:`~medfuse.serving.server.serve_bundle` — a bundle behind a real Triton server through
  PyTriton (``medfuse serve``): a tensor endpoint and a study endpoint with dynamic batching.
- :mod:`medfuse.serving.study` — the study wire format and the PHI-free error mapping.
- :class:`~medfuse.serving.client.ServeClient` — a small ``tritonclient`` wrapper.

Importing this package imports neither PyTriton nor tritonclient; the functions that need them
raise :class:`~medfuse.errors.MissingDependencyError` naming ``medfuse[serve]``.
"""

from __future__ import annotations

from medfuse.serving.study import decode_study, encode_study, encode_study_folder
from medfuse.serving.triton_repo import (
    TritonExportOptions,
    TritonRepository,
    export_triton_repository,
)

__all__ = [
    "TritonExportOptions",
    "TritonRepository",
    "decode_study",
    "encode_study",
    "encode_study_folder",
    "export_triton_repository",
]
