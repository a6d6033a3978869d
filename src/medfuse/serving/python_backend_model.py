"""Triton Python-backend model: a study's DICOM bytes → the network's input tensors.

``medfuse export-triton`` copies this file to ``<model>_preprocess/1/model.py`` next to
``model_spec.json``. It runs inside Triton's Python-backend stub, which must be able to import
medfuse (install it into that Python). Each request carries ``study`` (BYTES, ``[batch, 1]``;
the element format is in :mod:`medfuse.serving.study`) and gets one output per network input.
A study that cannot be preprocessed gets an error response with a PHI-free message; the other
requests of the same call are answered normally.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["TritonPythonModel"]


def _pb_utils() -> Any:
    import importlib

    return importlib.import_module("triton_python_backend_utils")


def _error_response(pb: Any, message: str, *, client_error: bool) -> Any:
    """An error response: ``INVALID_ARG`` (HTTP 400) for a bad study, else ``INTERNAL`` (500).

    Python backends older than 23.xx have no error codes; their errors are all ``INTERNAL``.
    """
    code = getattr(pb.TritonError, "INVALID_ARG" if client_error else "INTERNAL", None)
    error = pb.TritonError(message) if code is None else pb.TritonError(message, code)
    return pb.InferenceResponse(output_tensors=[], error=error)


class TritonPythonModel:
    """The model class Triton's Python backend instantiates."""

    spec: Any

    def initialize(self, args: dict[str, str]) -> None:
        """Load the ModelSpec written next to this file."""
        from medfuse.bundle.spec import ModelSpec

        here = Path(args["model_repository"]) / args["model_version"]
        self.spec = ModelSpec.from_dict(json.loads((here / "model_spec.json").read_text("utf-8")))

    def execute(self, requests: list[Any]) -> list[Any]:
        """Preprocess every request's studies with medfuse's own preprocessing."""
        from medfuse.serving.study import preprocess_payloads, safe_error

        pb = _pb_utils()
        responses = []
        for request in requests:
            try:
                study = pb.get_input_tensor_by_name(request, "study").as_numpy()
                payloads = [bytes(x) for x in study.reshape(-1)]
            except Exception as exc:  # not a study tensor: the server's side failed
                _kind, message = safe_error(exc)
                responses.append(_error_response(pb, message, client_error=False))
                continue
            try:
                arrays = preprocess_payloads(payloads, self.spec)
            except Exception as exc:  # a study that cannot feed the model: the client's input
                _kind, message = safe_error(exc)
                responses.append(_error_response(pb, message, client_error=True))
                continue
            tensors = [pb.Tensor(name, arr) for name, arr in arrays.items()]
            responses.append(pb.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        """Nothing to release."""
