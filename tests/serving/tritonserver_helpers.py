"""The real ``tritonserver`` binary that PyTriton ships, launched on an exported model repository.

PyTriton (``nvidia-pytriton``, in the serve Python) bundles a Triton server build with only the
``python`` backend. This module starts that binary the way PyTriton itself does
(``pytriton/triton.py`` and ``pytriton/server/triton_server.py``):

- a private copy of ``pytriton/tritonserver/backends`` as ``--backend-directory``, with the
  Python-backend stub for the serve Python's version copied in as
  ``python/triton_python_backend_stub`` (the stub embeds the interpreter it was built against);
- ``LD_LIBRARY_PATH`` extended with PyTriton's bundled libraries (``get_libs_path()``);
- the serve Python's ``bin`` first on ``PATH``, so the stub's embedded Python runs in that
  environment (which has medfuse and numpy);
- ``--backend-config=python,<key>=<value>``, one flag per setting: a unique shared-memory
  prefix and PyTriton's initial / growth shared-memory sizes.

The server listens on free loopback ports (HTTP + gRPC; metrics off), in explicit model control.
It is always stopped: SIGINT, a bounded wait, then SIGKILL of its whole process group (the
server and its stub processes); its shared-memory regions are removed afterwards.

Run as a script in the serve Python (``python tritonserver_helpers.py JOB.json``), the module is
the client side: it talks to the server with ``tritonclient`` (see :func:`client_main`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
INITIAL_SHM_BYTES = 4 * 1024 * 1024  # PyTriton's INITIAL_BACKEND_SHM_SIZE
GROWTH_SHM_BYTES = 1024 * 1024  # PyTriton's GROWTH_BACKEND_SHM_SIZE

_PROBE = """
import json, sys
from pathlib import Path
from pytriton.utils.distribution import get_libs_path, get_root_module_path, get_stub_path
root = get_root_module_path() / "tritonserver"
version = f"{sys.version_info[0]}.{sys.version_info[1]}"
print(json.dumps({
    "binary": str(root / "bin" / "tritonserver"),
    "backends": str(root / "backends"),
    "libs": str(get_libs_path()),
    "stub": str(get_stub_path(version)),
    "python_bin": str(Path(sys.exec_prefix) / "bin"),
}))
"""


@dataclass(frozen=True)
class TritonDist:
    """Where the serve Python's PyTriton keeps its server build."""

    binary: Path
    backends: Path
    libs: Path
    stub: Path
    python_bin: Path

    @property
    def python_env(self) -> Path:
        """The serve Python's environment (``sys.exec_prefix``): a venv with ``bin/activate``."""
        return self.python_bin.parent

    @classmethod
    def find(cls, python: str) -> TritonDist | None:
        """PyTriton's server build in ``python``'s environment (``None``: not there)."""
        probe = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, timeout=120, env=_clean_env()
        )
        if probe.returncode != 0:
            return None
        paths = {k: Path(v) for k, v in json.loads(probe.stdout).items()}
        dist = cls(**paths)
        needed = (dist.binary, dist.backends / "python" / "libtriton_python.so", dist.stub)
        return dist if all(p.is_file() for p in needed) else None

    def backend_directory(self, dest: Path) -> Path:
        """A private copy of the backends folder with the stub in place (PyTriton does the same)."""
        shutil.copytree(self.backends, dest, ignore=shutil.ignore_patterns("__pycache__"))
        stub = dest / "python" / "triton_python_backend_stub"
        shutil.copy(self.stub, stub)
        stub.chmod(0o755)
        return dest


@dataclass
class TritonProcess:
    """A running ``tritonserver``: its ports, process and log."""

    proc: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log: Path
    shm_prefix: str

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


def _clean_env() -> dict[str, str]:
    # PYTHONWARNINGS=error would turn third-party warnings inside the server / client into failures
    return {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}


def server_env(dist: TritonDist, *, python_on_path: bool = True) -> dict[str, str]:
    """The server's environment, as PyTriton's ``TritonServer._get_env`` builds it.

    ``python_on_path=False``: ``PATH`` is only ``/usr/bin:/bin``, so the stub finds no
    environment with medfuse (nor numpy) unless a model names one in ``EXECUTION_ENV_PATH``.
    """
    env = _clean_env()
    libs = str(dist.libs)
    env["LD_LIBRARY_PATH"] = (
        f"{env['LD_LIBRARY_PATH']}:{libs}" if env.get("LD_LIBRARY_PATH") else libs
    )
    if python_on_path:
        env["PATH"] = f"{dist.python_bin}:{env.get('PATH', '/usr/bin:/bin')}"
    else:
        env["PATH"] = "/usr/bin:/bin"
        env.pop("VIRTUAL_ENV", None)
    return env


def server_command(
    dist: TritonDist,
    repo: Path,
    backends: Path,
    *,
    http_port: int,
    grpc_port: int,
    load: Sequence[str],
    shm_prefix: str,
) -> list[str]:
    """The ``tritonserver`` command line: loopback only, explicit model control, metrics off."""
    cmd = [
        str(dist.binary),
        f"--model-repository={repo}",
        f"--backend-directory={backends}",
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
        f"--backend-config=python,shm-default-byte-size={INITIAL_SHM_BYTES}",
        f"--backend-config=python,shm-growth-byte-size={GROWTH_SHM_BYTES}",
        "--model-control-mode=explicit",
        *(f"--load-model={m}" for m in load),
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
        "--allow-gpu-metrics=false",
        "--allow-cpu-metrics=false",
        "--exit-timeout-secs=20",
    ]
    return cmd


def _get(url: str) -> tuple[int, bytes]:
    try:
        with closing(urllib.request.urlopen(url, timeout=5)) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError:
        return 0, b""


def server_metadata(server: TritonProcess) -> dict[str, Any]:
    """``GET /v2``: the server's name, version and extensions."""
    status, body = _get(f"http://{server.http_url}/v2")
    assert status == 200, f"GET /v2 answered {status}"
    meta: dict[str, Any] = json.loads(body)
    return meta


def stop_process_group(
    proc: subprocess.Popen[bytes], grace_s: float, sig: int = signal.SIGINT
) -> None:
    """Stop a server started in its own process group: ``sig`` (default SIGINT, Triton's
    graceful shutdown, as PyTriton's stop()), SIGKILL after ``grace_s``, then any leftover."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    # stub processes share the server's process group; none may outlive it
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return
    os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def running_tritonserver(
    dist: TritonDist,
    repo: Path,
    workdir: Path,
    load: Sequence[str],
    *,
    startup_s: float = 180.0,
    stop_s: float = 40.0,
    python_on_path: bool = True,
) -> Iterator[TritonProcess]:
    """Start ``tritonserver`` on ``repo`` with the models ``load``; yield it once ready; stop it.

    Readiness is ``/v2/health/ready`` (the server and every model loaded at start-up). If the
    server exits or is not ready within ``startup_s``, the error carries the log's tail.
    ``python_on_path``: see :func:`server_env`.
    """
    from serving_helpers import free_ports

    workdir.mkdir(parents=True, exist_ok=True)
    backends = dist.backend_directory(workdir / f"backends-{time.monotonic_ns()}")
    http_port, grpc_port = free_ports(2)
    shm_prefix = f"mfpytest{os.getpid()}-{secrets.token_hex(4)}"
    log = workdir / f"tritonserver-{http_port}.log"
    cmd = server_command(
        dist, repo, backends, http_port=http_port, grpc_port=grpc_port, load=load,
        shm_prefix=shm_prefix,
    )  # fmt: skip
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(dist, python_on_path=python_on_path),
            cwd=workdir,
            start_new_session=True,
        )
    server = TritonProcess(proc, http_port, grpc_port, log, shm_prefix)
    try:
        deadline = time.monotonic() + startup_s
        while _get(f"http://{server.http_url}/v2/health/ready")[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                state = f"exited with {proc.returncode}" if proc.poll() is not None else "timed out"
                raise AssertionError(
                    f"tritonserver not ready ({state}); log tail:\n{server.log_text()[-4000:]}"
                )
            time.sleep(0.5)
        yield server
    finally:
        stop_process_group(proc, stop_s)
        for leftover in Path("/dev/shm").glob(f"{shm_prefix}*"):
            leftover.unlink(missing_ok=True)


def run_job(python: str, job: dict[str, Any], tmp: Path, timeout: float = 300.0) -> dict[str, Any]:
    """Run this module's client side with ``job`` in the serve Python; return its JSON answer."""
    job_file = tmp / f"tjob-{time.monotonic_ns()}.json"
    job_file.write_text(json.dumps(job))
    out = subprocess.run(
        [python, str(HERE), str(job_file)], capture_output=True, timeout=timeout, env=_clean_env()
    )
    if out.returncode != 0:
        raise AssertionError(f"tritonclient job failed:\n{out.stderr.decode()[-3000:]}")
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


# -- client side (runs in the serve Python, which has tritonclient) -------------------------------


def _client(job: dict[str, Any]) -> Any:
    import tritonclient.http as http

    assert job["url"].startswith("127.0.0.1:"), "loopback only"
    return http.InferenceServerClient(job["url"], connection_timeout=240, network_timeout=240)


def _infer(job: dict[str, Any]) -> dict[str, Any]:
    """Each entry of ``requests`` (a list of payload files) is one request of shape [n, 1]."""
    import numpy as np
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    answers: list[dict[str, Any]] = []
    with closing(_client(job)) as client:
        for i, files in enumerate(job["requests"]):
            study = np.array([[Path(f).read_bytes()] for f in files], dtype=np.object_)
            inp = http.InferInput("study", list(study.shape), "BYTES")
            inp.set_data_from_numpy(study)
            try:
                result = client.infer(job["model"], [inp])
            except InferenceServerException as exc:
                answers.append({"ok": False, "status": exc.status(), "message": exc.message()})
                continue
            out = Path(job["out"]) / f"r{i}.npz"
            np.savez(out, **{name: result.as_numpy(name) for name in job["outputs"]})
            answers.append({"ok": True, "npz": str(out)})
    return {"answers": answers}


def _load(job: dict[str, Any]) -> dict[str, Any]:
    """Ask the server to load each of ``models``; answer the error text of each (or None)."""
    from tritonclient.utils import InferenceServerException

    errors: dict[str, str | None] = {}
    with closing(_client(job)) as client:
        for model in job["models"]:
            try:
                client.load_model(model)
                errors[model] = None
            except InferenceServerException as exc:
                errors[model] = exc.message()
        index = client.get_model_repository_index()
        ready = {m: bool(client.is_model_ready(m)) for m in job["models"] + job.get("check", [])}
    return {"errors": errors, "index": index, "ready": ready}


def client_main(argv: Sequence[str]) -> int:
    """``python tritonserver_helpers.py JOB.json``: run one client job, print its JSON answer."""
    job = json.loads(Path(argv[1]).read_text())
    answer = {"infer": _infer, "load": _load}[job["kind"]](job)
    print(json.dumps(answer))
    return 0


# -- a test-only stand-in for the network ---------------------------------------------------------

STANDIN_MODEL_PY = '''"""Test-only stand-in for the network: its model.onnx in ONNX Runtime."""
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb


class TritonPythonModel:
    def initialize(self, args):
        here = Path(args["model_repository"]) / args["model_version"]
        config = json.loads(args["model_config"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(here / "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )

    def execute(self, requests):
        responses = []
        for request in requests:
            feeds = {n: pb.get_input_tensor_by_name(request, n).as_numpy() for n in self.inputs}
            values = self.session.run(self.outputs, feeds)
            tensors = [pb.Tensor(n, np.ascontiguousarray(v)) for n, v in zip(self.outputs, values)]
            responses.append(pb.InferenceResponse(output_tensors=tensors))
        return responses
'''


def with_python_standin(repo: Path, model: str, dest: Path) -> Path:
    """A copy of ``repo`` whose network ``model`` runs in the Python backend (test-only).

    The exported ``config.pbtxt`` is kept (inputs, outputs, dims, batching) except for two lines:
    ``backend: "onnxruntime"`` becomes ``backend: "python"`` and ``default_model_filename`` goes
    (the Python backend would take it for its ``model.py``).
    """
    shutil.copytree(repo, dest)
    config = dest / model / "config.pbtxt"
    lines = config.read_text().splitlines()
    assert 'backend: "onnxruntime"' in lines, "expected an onnxruntime network config"
    kept = [
        'backend: "python"' if line == 'backend: "onnxruntime"' else line
        for line in lines
        if not line.startswith("default_model_filename:")
    ]
    assert len(kept) == len(lines) - 1, "expected one default_model_filename line"
    config.write_text("\n".join(kept) + "\n")
    (dest / model / "1" / "model.py").write_text(STANDIN_MODEL_PY)
    return dest


if __name__ == "__main__":
    sys.exit(client_main(sys.argv))
