"""The CLI's one progress bar: count and ETA on a terminal's stderr, silent otherwise."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path


def _synth(tmp_path: Path, *extra: str, tty: bool) -> tuple[int, str, str]:
    cmd = [sys.executable, "-m", "medfuse.cli.main", "synth", "--patients", "3"]
    cmd += ["--out", str(tmp_path / "s"), *extra]
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    if not tty:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = pty.openpty()
    proc2 = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc2.communicate(timeout=300)
    os.close(master)
    return proc2.returncode, out.decode(), b"".join(chunks).decode(errors="replace")


def test_bar_with_count_and_eta_on_a_terminal(tmp_path: Path) -> None:
    rc, _, err = _synth(tmp_path, tty=True)
    assert rc == 0
    assert "synthesising patients" in err and "3/3" in err and "ETA" in err


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    rc, out, err = _synth(tmp_path, "--json", tty=False)
    assert rc == 0 and out.lstrip().startswith("{")
    assert "ETA" not in err and "synthesising" not in err
