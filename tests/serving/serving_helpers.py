"""Shared helpers of the serving tests: the serve Python, free loopback ports, a server process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from tritonserver_helpers import stop_process_group

from helpers import screening_fixtures as fixtures

REPO = Path(__file__).resolve().parents[2]
SKIP_REASON = "needs a Python whose Triton stub works: set MEDFUSE_SERVE_PYTHON; see .ci/run"
CLIENT_DRIVER = Path(__file__).with_name("client_driver.py")


def serve_python() -> str | None:
    """The interpreter that runs ``medfuse serve`` (``$MEDFUSE_SERVE_PYTHON`` or ``.serve-venv``)."""
    env = os.environ.get("MEDFUSE_SERVE_PYTHON")
    candidates = [env] if env else [str(REPO / ".serve-venv" / "bin" / "python")]
    for cand in candidates:
        if cand and Path(cand).is_file():
            probe = subprocess.run(
                [cand, "-c", "import pytriton, tritonclient.http, tritonclient.grpc, medfuse"],
                capture_output=True,
                timeout=60,
            )
            if probe.returncode == 0:
                return cand
    return None


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ready(port: int) -> bool:
    try:
        with closing(
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2)
        ) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextmanager
def running_server(
    python: str, bundle: Path, tmp: Path, *extra: str, startup_s: float = 120.0
) -> Iterator[dict[str, Any]]:
    """Start ``medfuse serve`` on free loopback ports; yield its ready info; always stop it."""
    http, grpc, metrics = free_ports(3)
    env = fixtures.cli_env(tmp)
    env.pop("PYTHONWARNINGS", None)  # PyTriton's own imports warn; the server is not under test
    log = (tmp / "serve.log").open("wb")
    out_path = tmp / f"serve-{http}.out"
    out = out_path.open("wb")
    cmd = [
        python, "-m", "medfuse.cli.main", "serve", str(bundle),
        "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
        *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=out, stderr=log, env=env, cwd=tmp, start_new_session=True)
    try:
        deadline = time.monotonic() + startup_s
        info: dict[str, Any] | None = None
        while info is None or not _ready(http):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"medfuse serve did not become ready: see {tmp / 'serve.log'}")
            time.sleep(0.5)
            if info is None:  # Triton's own log shares stdout: find medfuse's ready line
                for line in out_path.read_text(errors="replace").splitlines():
                    if line.startswith('{"ready"'):
                        info = json.loads(line)
        info.update(
            http_port=http, grpc_port=grpc, metrics_port=metrics, proc=proc, log=tmp / "serve.log"
        )
        yield info
    finally:
        stop_process_group(proc, 30.0, signal.SIGTERM)
        log.close()
        out.close()


def run_client(
    python: str, job: dict[str, Any], tmp: Path, timeout: float = 180.0
) -> dict[str, Any]:
    """Run ``client_driver.py`` with ``job`` in the serve Python; return its JSON answer."""
    job_file = tmp / f"job-{time.monotonic_ns()}.json"
    job_file.write_text(json.dumps(job))
    out = subprocess.run(
        [python, str(CLIENT_DRIVER), str(job_file)],
        capture_output=True,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"},
    )
    if out.returncode != 0:
        raise AssertionError(f"client driver failed:\n{out.stderr.decode()[-3000:]}")
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


PY = sys.executable
