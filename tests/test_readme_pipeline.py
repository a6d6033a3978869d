"""README.md's pipeline block runs as pasted, in order, at its small scale.

The fenced ``bash`` block under "## The pipeline" is extracted and each line is run with
``bash`` in an empty temporary folder — the only thing substituted is *where* it runs (and a
``medfuse`` shim on ``PATH`` that runs this checkout's CLI with this interpreter). Two lines
may not complete here, and the test decides that at run time from the command itself, never
from a list of lines to skip:

- ``medfuse build`` needs an NVIDIA GPU. On a machine without one it must exit 1 with its own
  refusal ("no NVIDIA GPU was found on this machine"); any other failure fails the test, and
  on a machine with a GPU (the conftest's detection) it must succeed.
- ``medfuse serve`` serves until stopped. It is started in the background: either it prints
  its ``{"ready": true, ...}`` line (then it is stopped with SIGINT and must exit 0), or it
  exits 1 with its own missing-dependency message naming ``pip install 'medfuse[serve]'``
  (PyTriton not installed here).

Slow (several minutes on 2 cores: training, export, quantization): ``MEDFUSE_SLOW=1``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.hardware import has_gpu

README = Path(__file__).resolve().parents[1] / "README.md"
SRC = Path(__file__).resolve().parents[1] / "src"


def pipeline_lines(text: str) -> list[str]:
    """The command lines of the first ``bash`` block after ``## The pipeline``."""
    section = text.split("## The pipeline", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_block_is_found_and_covers_every_verb() -> None:
    lines = pipeline_lines(README.read_text())
    words = [shlex.split(line, comments=True) for line in lines]
    verbs = {w[i + 1] for w in words for i, x in enumerate(w[:-1]) if x == "medfuse"}
    from medfuse.cli.main import VERBS

    assert {v.name for v in VERBS} - verbs <= {"demo"}, "README pipeline misses a verb"
    # Every folder a line reads was made by an earlier line (no `/data/...` placeholders).
    assert not any("/data/" in line for line in lines)


def _env(tmp: Path) -> dict[str, str]:
    shim = tmp / ".bin" / "medfuse"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m medfuse.cli.main "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    env.update(
        PATH=f"{shim.parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]),
        HOME=str(tmp / ".home"),
        MEDFUSE_CACHE_DIR=str(tmp / ".cache"),
        COLUMNS="80",
    )
    return env


def _serve(line: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {line}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    ready = None
    while time.monotonic() < deadline:
        out = proc.stdout.readline()
        if not out:
            break  # exited
        if out.startswith("{"):
            ready = json.loads(out)
            break
    if ready is not None:
        assert ready.get("ready") is True
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        return "served"
    proc.kill()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "pip install 'medfuse[serve]'" in err, err  # its own missing-dependency refusal
    return "refused: PyTriton not installed"


@pytest.mark.slow
def test_readme_pipeline_runs_as_pasted(tmp_path: Path) -> None:
    env = _env(tmp_path)
    outcome: dict[str, str] = {}
    for line in pipeline_lines(README.read_text()):
        verb = shlex.split(line, comments=True)[1]
        if verb == "serve":
            outcome[line] = _serve(line, tmp_path, env)
            continue
        proc = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=1800,
        )  # fmt: skip
        if verb == "build" and not has_gpu():
            assert proc.returncode == 1, proc.stderr
            assert "no NVIDIA GPU was found on this machine" in proc.stderr, proc.stderr
            outcome[line] = "refused: no GPU"
            continue
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-3000:]}"
        outcome[line] = "ok"
    # What the lines made, read back.
    results = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(results) == 12
    assert json.loads((tmp_path / "bench.json").read_text())["kind"] == "medfuse-bench-overview"
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert json.loads((tmp_path / "validation.json").read_text())["passed"] is True
    print(json.dumps(outcome, indent=1))
