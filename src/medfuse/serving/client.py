"""Small client helpers for a served bundle (``tritonclient`` over HTTP or gRPC, loopback).

::

    from medfuse.serving.client import ServeClient
    with ServeClient("127.0.0.1:8000", "medfuse-reference") as client:
        record = client.predict_study_folder("path/to/one/study")   # the `medfuse run` JSON
        outputs = client.infer({"ct": ct, "mr": mr, "xr": xr, "presence": presence})

Needs ``pip install 'medfuse[serve]'`` (``tritonclient[http,grpc]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from medfuse._deps import require
from medfuse.bundle.spec import ModelSpec
from medfuse.bundle.units import output_units
from medfuse.errors import UsageError
from medfuse.serving.study import STUDY_RESULT, encode_study_folder

__all__ = ["ServeClient", "outputs_to_record", "triton_datatype"]

_DATATYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "int8": "INT8",
    "uint8": "UINT8",
    "int32": "INT32",
    "int64": "INT64",
    "object": "BYTES",
}


def triton_datatype(dtype: np.dtype[Any]) -> str:
    """The KServe v2 datatype name of a NumPy dtype (``float32`` → ``FP32``)."""
    try:
        return _DATATYPES[np.dtype(dtype).name]
    except KeyError:
        raise UsageError(
            f"dtype {dtype} cannot be sent; use one of {', '.join(_DATATYPES)}"
        ) from None


class ServeClient:
    """A client of ``medfuse serve`` (or of an exported repository's models).

    Parameters
    ----------
    url:
        ``host:port`` of the HTTP (``protocol="http"``) or gRPC endpoint.
    model:
        The bundle's model name (the tensor model); the study model is ``<model>_study``.
    protocol:
        ``"http"`` or ``"grpc"``.
    timeout_s:
        Network timeout of every call.
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        protocol: Literal["http", "grpc"] = "http",
        timeout_s: float = 60.0,
    ) -> None:
        if protocol not in ("http", "grpc"):
            raise UsageError(f"protocol {protocol!r}: use http or grpc")
        self.protocol = protocol
        self.model = model
        self.study_model = f"{model}_study"
        self.timeout_s = timeout_s
        self._mod = require(f"tritonclient.{protocol}", purpose="the serving client", extra="serve")
        if protocol == "http":
            self._client = self._mod.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            self._client = self._mod.InferenceServerClient(url)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ServeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def raw(self) -> Any:
        """The underlying ``tritonclient`` client."""
        return self._client

    def is_ready(self) -> bool:
        """Whether the server and both models are ready."""
        try:
            return bool(
                self._client.is_server_ready()
                and self._client.is_model_ready(self.model)
                and self._client.is_model_ready(self.study_model)
            )
        except Exception:
            return False

    def _infer(
        self, model: str, feeds: Mapping[str, NDArray[Any]], outputs: Sequence[str] | None
    ) -> Any:
        inputs = []
        for name, arr in feeds.items():
            inp = self._mod.InferInput(name, list(arr.shape), triton_datatype(arr.dtype))
            inp.set_data_from_numpy(arr)
            inputs.append(inp)
        wanted = [self._mod.InferRequestedOutput(n) for n in outputs] if outputs else None
        if self.protocol == "grpc":
            return self._client.infer(model, inputs, outputs=wanted, client_timeout=self.timeout_s)
        return self._client.infer(model, inputs, outputs=wanted)

    def infer(
        self, feeds: Mapping[str, NDArray[Any]], outputs: Sequence[str]
    ) -> dict[str, NDArray[Any]]:
        """Run tensors (batch axis first) through the tensor model; returns the named outputs."""
        result = self._infer(self.model, feeds, outputs)
        return {name: result.as_numpy(name) for name in outputs}

    def predict_study(self, payload: bytes) -> dict[str, Any]:
        """Send one study payload (see :mod:`medfuse.serving.study`); returns its JSON record."""
        study = np.array([[payload]], dtype=np.object_)
        result = self._infer(self.study_model, {"study": study}, [STUDY_RESULT])
        raw = result.as_numpy(STUDY_RESULT).reshape(-1)[0]
        record: dict[str, Any] = json.loads(raw)
        return record

    def predict_study_folder(self, folder: str | Path) -> dict[str, Any]:
        """Frame every file under ``folder`` as one study and send it."""
        return self.predict_study(encode_study_folder(folder))

    def statistics(self, model: str | None = None) -> dict[str, Any]:
        """Triton's inference statistics of ``model`` (default: the tensor model) as JSON."""
        name = model or self.model
        if self.protocol == "grpc":
            stats: dict[str, Any] = self._client.get_inference_statistics(name, as_json=True)
        else:
            stats = self._client.get_inference_statistics(name)
        return stats


def outputs_to_record(
    spec: ModelSpec, outputs: Mapping[str, NDArray[Any]], *, key: str = "", row: int = 0
) -> dict[str, Any]:
    """The ``medfuse run`` record of one row of an exported ensemble's outputs.

    The ensemble returns the preprocessing's presence mask (:data:`PRESENCE_OUTPUT`) beside the
    network's outputs; the record's provenance names the inputs that mask says were filled (the
    series behind them are not known at this level). A row whose mask does not meet the model's
    presence rule becomes ``no_usable_input`` without outputs.

    Raises
    ------
    UsageError
        The outputs lack the presence mask of a model that has one (a repository exported by an
        older medfuse: export it again).
    """
    from medfuse.runtime.results import (
        InputUse,
        ModelInfo,
        OutputRecord,
        OutputResult,
        PresenceRule,
        Provenance,
        ResultRecord,
    )
    from medfuse.serving.triton_repo import PRESENCE_OUTPUT

    images = spec.image_inputs
    if spec.presence_input is None:
        mask = [1.0] * len(images)
    elif PRESENCE_OUTPUT in outputs:
        mask = [float(v) for v in np.asarray(outputs[PRESENCE_OUTPUT])[row].reshape(-1)]
    else:
        raise UsageError(
            f"the outputs lack {PRESENCE_OUTPUT!r}, the presence mask a record rests on; export "
            "the Triton repository again with this medfuse (medfuse export-triton)"
        )
    inputs = {
        inp.name: InputUse(modality=inp.modality or inp.name, present=present > 0.5)
        if present > 0.5
        else InputUse(
            modality=inp.modality or inp.name,
            reason="no_series",
            detail="not filled by preprocessing",
        )
        for inp, present in zip(images, mask, strict=True)
    }
    rule = PresenceRule(spec.min_present, spec.required_inputs)
    provenance = Provenance(
        inputs=inputs, rule=rule, rule_met=rule.met_by([n for n, u in inputs.items() if u.present])
    )
    model = ModelInfo(name=spec.name, version=spec.version)
    if not provenance.rule_met:
        return ResultRecord(key or None, "no_usable_input", model, provenance=provenance).to_json()
    record = ResultRecord(
        study=key or None,
        status="ok",
        model=model,
        outputs={
            o.name: OutputRecord.from_result(
                OutputResult.from_row(
                    o, np.asarray(outputs[o.name])[row], output_units(spec.extra).get(o.name)
                )
            )
            for o in spec.outputs
        },
        provenance=provenance,
    )
    return record.to_json()
