"""``medfuse serve``: a bundle behind a real Triton Inference Server, through PyTriton.

Two models are served, both with Triton's dynamic batcher in front:

- ``<model>`` — tensors in, the network's raw outputs out (inputs and outputs as in the
  manifest, batch axis dynamic); runs :meth:`Session.infer`;
- ``<model>_study`` — ``study`` (BYTES ``[1]``, one study per request, format in
  :mod:`medfuse.serving.study`) in, ``result`` (BYTES ``[1]``: the JSON record ``medfuse run``
  writes, :class:`medfuse.runtime.results.ResultRecord`) out; a dynamic batch of studies is
  preprocessed in parallel and run in one inference call.

Every study gets a record: one that cannot be read or fed to the model gets
``"status": "error"`` with the error type and a PHI-free message, and its neighbours in the
same dynamic batch are unaffected. Health (``/v2/health/live``, ``/v2/health/ready``),
statistics (``/v2/models/<m>/stats``) and Prometheus metrics (``:metrics_port/metrics``) are
Triton's own. Everything binds to ``127.0.0.1`` unless another host is asked for.

PyTriton (``pip install 'medfuse[serve]'``) ships the server binary; its Python-backend stub
must match the interpreter (see ``.ci/run``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse._deps import require
from medfuse.errors import UsageError
from medfuse.runtime.threads import available_cores, check_threads
from medfuse.serving.study import STUDY_RESULT, StudyHandler

__all__ = ["ServeOptions", "parse_batch_sizes", "serve_bundle", "served_model_names"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    """Settings of :func:`serve_bundle` (ports, batching, session)."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int = 8
    instances: int = 1
    preferred_batch: tuple[int, ...] = ()
    max_queue_delay_us: int = 2000
    backend: str = "auto"
    precision: str = "auto"
    device: str = "auto"
    threads: int | None = None
    workers: int = 2
    key_secret_file: Path | None = None

    def __post_init__(self) -> None:
        if self.threads is not None:
            check_threads(self.threads, "threads")
        check_threads(self.workers, "workers", minimum=0)
        if self.max_batch < 1 or self.instances < 1 or self.max_queue_delay_us < 0:
            raise UsageError(
                f"max batch {self.max_batch} and instances {self.instances} must be >= 1 and "
                f"the queue delay {self.max_queue_delay_us} µs >= 0"
            )
        for name in ("http_port", "grpc_port", "metrics_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise UsageError(f"{name.replace('_', ' ')} {port} is not a TCP port (1..65535)")
        bad = [b for b in self.preferred_batch if not 1 <= b <= self.max_batch]
        if bad:
            raise UsageError(f"preferred batch sizes {bad} are outside 1..{self.max_batch}")

    @property
    def loopback(self) -> bool:
        """Whether the server binds a loopback address only."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def served_model_names(model_name: str) -> tuple[str, str]:
    """``(tensor model, study model)`` names for a bundle's model name."""
    return model_name, f"{model_name}_study"


def _secret(options: ServeOptions) -> bytes:
    from medfuse.runtime.screening import secret_from

    return secret_from(options.key_secret_file)


def _tensor_fn(session: Any) -> Callable[..., dict[str, NDArray[Any]]]:
    def infer(**feeds: NDArray[Any]) -> dict[str, NDArray[Any]]:
        outputs = session.infer(feeds)
        return {name: np.array(value, copy=True) for name, value in outputs.items()}

    return infer


def _study_fn(handler: StudyHandler) -> Callable[..., dict[str, NDArray[Any]]]:
    def infer(study: NDArray[Any]) -> dict[str, NDArray[Any]]:
        payloads = [bytes(x) for x in study.reshape(len(study), -1)[:, 0]]
        records = handler(payloads)
        encoded = [json.dumps(r.to_json(), ensure_ascii=False).encode("utf-8") for r in records]
        return {STUDY_RESULT: np.array(encoded, dtype=np.object_).reshape(-1, 1)}

    return infer


def serve_bundle(
    bundle: str | Path | None,
    options: ServeOptions | None = None,
    *,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Serve ``bundle`` with Triton until SIGINT / SIGTERM (or the server dies).

    Parameters
    ----------
    bundle:
        Bundle directory or zip; ``None`` for the shipped reference bundle.
    options:
        Ports, batching and session settings (:class:`ServeOptions`).
    on_ready:
        Called once with the endpoints and model names when the models are loaded.

    Raises
    ------
    MissingDependencyError
        PyTriton is not installed (``pip install 'medfuse[serve]'``).
    BundleError, BackendError
        The bundle cannot be opened or run here.
    """
    options = options or ServeOptions()
    pytriton_triton = require("pytriton.triton", purpose="medfuse serve", extra="serve")
    decorators = require("pytriton.decorators", purpose="medfuse serve", extra="serve")
    mc = require("pytriton.model_config", purpose="medfuse serve", extra="serve")
    from medfuse.runtime.session import Session

    if not options.loopback:
        log.warning(
            "serving on %s: reachable beyond this machine; put TLS and auth in front", options.host
        )
    secret = _secret(options)
    sessions: list[Any] = []

    # Each instance holds a tensor session and a study session: they share the cores (one
    # thread policy, medfuse.runtime.threads); only the study session has a read pipeline.
    share = max(1, available_cores() // (2 * options.instances))

    def session(pipeline: bool) -> Any:
        s = Session(
            bundle,
            backend=options.backend,
            precision=options.precision,
            device=options.device,
            threads=options.threads,
            workers=options.workers if pipeline else 0,
            pipeline=pipeline,
            cores=share,
            max_batch=options.max_batch,
            check_finite=False,
        )
        sessions.append(s)
        return s

    try:
        tensor_sessions = [session(False) for _ in range(options.instances)]
        study_handlers = [
            StudyHandler(session(True), secret, workers=options.workers)
            for _ in range(options.instances)
        ]
        spec = tensor_sessions[0].spec
        if spec is None:
            raise UsageError("medfuse serve needs a bundle with a model spec, not a bare ONNX file")
        tensor_name, study_name = served_model_names(spec.name)
        batcher = mc.DynamicBatcher(
            max_queue_delay_microseconds=options.max_queue_delay_us,
            preferred_batch_size=list(options.preferred_batch) or None,
        )
        config = mc.ModelConfig(max_batch_size=options.max_batch, batcher=batcher)
        host = options.host
        triton_config = pytriton_triton.TritonConfig(
            http_address=host,
            http_port=options.http_port,
            grpc_address=host,
            grpc_port=options.grpc_port,
            metrics_address=host,
            metrics_port=options.metrics_port,
            allow_gpu_metrics=False,
            exit_timeout_secs=5,
        )
        # Load/unload, shared memory, trace and logging stay behind PyTriton's random token;
        # health, inference and statistics are open on loopback, as in stock Triton.
        security = pytriton_triton.TritonSecurityConfig(
            restricted_endpoints=["shared-memory", "model-repository", "trace", "logging"]
        )
        # PyTriton puts UNIX sockets in its workspace: keep the path short (AF_UNIX limit).
        workspace = Path(tempfile.mkdtemp(prefix="medfuse-triton-"))
        triton = pytriton_triton.Triton(
            config=triton_config, security_config=security, workspace=workspace / "ws"
        )
        try:
            triton.bind(
                model_name=tensor_name,
                infer_func=[decorators.batch(_tensor_fn(s)) for s in tensor_sessions],
                inputs=[
                    mc.Tensor(name=i.name, dtype=np.dtype(i.dtype), shape=i.sample_shape())
                    for i in spec.inputs
                ],
                outputs=[
                    mc.Tensor(
                        name=o.name, dtype=np.float32, shape=tuple(int(d) for d in o.shape[1:])
                    )
                    for o in spec.outputs
                ],
                config=config,
            )
            triton.bind(
                model_name=study_name,
                infer_func=[decorators.batch(_study_fn(h)) for h in study_handlers],
                inputs=[mc.Tensor(name="study", dtype=bytes, shape=(1,))],
                outputs=[mc.Tensor(name=STUDY_RESULT, dtype=bytes, shape=(1,))],
                config=config,
            )
            triton.run()
            info = {
                "ready": True,
                "http": f"{host}:{options.http_port}",
                "grpc": f"{host}:{options.grpc_port}",
                "metrics": f"http://{host}:{options.metrics_port}/metrics",
                "models": {"tensor": tensor_name, "study": study_name},
                "max_batch": options.max_batch,
                "instances": options.instances,
                "session": tensor_sessions[0].info.to_dict(),
                "pid": os.getpid(),
            }
            log.info(
                "serving %s on %s (HTTP %d, gRPC %d)",
                tensor_name,
                host,
                options.http_port,
                options.grpc_port,
            )
            if on_ready is not None:
                on_ready(info)
            previous = signal.signal(signal.SIGTERM, _interrupt)
            try:
                triton.serve()
            finally:
                signal.signal(signal.SIGTERM, previous)
        finally:
            triton.stop()
            shutil.rmtree(workspace, ignore_errors=True)
    finally:
        for s in sessions:
            s.close()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM → the same clean shutdown as Ctrl-C."""
    raise KeyboardInterrupt


def parse_batch_sizes(text: str | None) -> tuple[int, ...]:
    """``"4,8"`` → ``(4, 8)``; empty or ``None`` → ``()``; ``0`` or a negative size is a
    UsageError (the one parser: :func:`medfuse.runtime.batch_sizes.parse_batch_sizes`)."""
    from medfuse.runtime.batch_sizes import parse_batch_sizes as parse

    return parse(text, option="--preferred-batch", allow_empty=True)
