"""``medfuse run``'s results file under pressure, in real subprocesses: a second writer, another
key secret, a full disk, unusable paths and secrets — each one clean line, exit 2, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import screening_fixtures as fx

# The real CLI, pausing after each durable line so that a second process meets a running one.
SLOW_WRITES = """
import sys, time
import medfuse.runtime.results.io as rio
write = rio.ResultsWriter.write
def slow_write(self, record):
    write(self, record)
    time.sleep(1.0)
rio.ResultsWriter.write = slow_write
from medfuse.cli.main import main
sys.exit(main(sys.argv[1:]))
"""

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(fx.shipped_or_tiny_bundle(tmp_path_factory.mktemp("bundle")))


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medfuse.synthetic import generate_studies

    root = tmp_path_factory.mktemp("studies") / "in"
    generate_studies(root, 3, seed=7)
    return root


@pytest.fixture()
def garbage(tmp_path: Path) -> Path:
    """A folder without DICOM: a run that got as far as discovery would exit 1, not 2."""
    root = tmp_path / "garbage"
    root.mkdir()
    (root / "x.dcm").write_bytes(b"not dicom" * 10)
    return root


def _run(args: list[str], env_root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*fx.CLI, *args],
        capture_output=True,
        text=True,
        env={**fx.cli_env(env_root), **env},
        timeout=300,
    )


def _clean_failure(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # one message line (a progress bar that had started may stand above it)
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("medfuse ")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def _keys(path: Path) -> list[str]:
    return [json.loads(line)["study"] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_writer_fails_at_once_naming_the_first(
    studies: Path, bundle: Path, tmp_path: Path, resume: bool
) -> None:
    out = tmp_path / "r.jsonl"
    env = fx.cli_env(tmp_path)
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SLOW_WRITES,
            "run",
            str(studies),
            "--bundle",
            str(bundle),
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out.exists() and out.read_bytes().count(b"\n") >= 1):
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the first run wrote nothing"
            time.sleep(0.1)
        second = _run(
            [
                "run",
                str(studies),
                "--bundle",
                str(bundle),
                "--out",
                str(out),
                *(["--resume"] if resume else []),
            ],
            tmp_path,
        )
        assert first.poll() is None, "the first run ended before the second one was tried"
    finally:
        _stdout, err = first.communicate(timeout=300)
    _clean_failure(second, f"PID {first.pid}", str(out), "another --out")
    assert first.returncode == 0, err[-3000:]
    keys = _keys(out)
    assert len(keys) == len(set(keys)) == 3


def test_resume_with_another_secret_is_refused(studies: Path, bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    one, two = tmp_path / "one.secret", tmp_path / "two.secret"
    first = _run(
        [
            "run",
            str(studies),
            "--bundle",
            str(bundle),
            "--out",
            str(out),
            "--key-secret-file",
            str(one),
        ],
        tmp_path,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    before = out.read_bytes()
    meta = json.loads(out.with_name("r.jsonl.meta").read_text())
    assert one.read_text().strip() not in json.dumps(meta)
    again = _run(
        [
            "run",
            str(studies),
            "--bundle",
            str(bundle),
            "--out",
            str(out),
            "--resume",
            "--key-secret-file",
            str(two),
        ],
        tmp_path,
    )
    _clean_failure(again, "another study-key secret", meta["key_fingerprint"], "--key-secret-file")
    assert out.read_bytes() == before
    same = _run(
        [
            "run",
            str(studies),
            "--bundle",
            str(bundle),
            "--out",
            str(out),
            "--resume",
            "--key-secret-file",
            str(one),
            "--json",
        ],
        tmp_path,
    )
    assert same.returncode == 0, same.stderr[-3000:]
    assert json.loads(same.stdout)["already_done"] == 3
    assert out.read_bytes() == before


def test_a_full_disk_is_one_line_naming_the_file(
    studies: Path, bundle: Path, tmp_path: Path
) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    proc = _run(["run", str(studies), "--bundle", str(bundle), "--out", "/dev/full"], tmp_path)
    _clean_failure(proc, "/dev/full", "ENOSPC")


def test_out_whose_parent_is_a_file_fails_before_discovery(garbage: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "r.jsonl"
    proc = _run(["run", str(garbage), "--out", str(target)], tmp_path)
    _clean_failure(proc, str(target), "is a file, not a folder")


def test_out_that_is_a_folder(garbage: Path, tmp_path: Path) -> None:
    proc = _run(["run", str(garbage), "--out", str(tmp_path)], tmp_path)
    _clean_failure(proc, str(tmp_path), "is a folder")


def test_csv_whose_parent_is_a_file_fails_before_discovery(garbage: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "r.csv"
    proc = _run(
        ["run", str(garbage), "--out", str(tmp_path / "r.jsonl"), "--csv", str(target)], tmp_path
    )
    _clean_failure(proc, "--csv", str(target))


def test_secret_file_that_is_a_folder(garbage: Path, tmp_path: Path) -> None:
    proc = _run(
        [
            "run",
            str(garbage),
            "--out",
            str(tmp_path / "r.jsonl"),
            "--key-secret-file",
            str(tmp_path),
        ],
        tmp_path,
    )
    _clean_failure(proc, "--key-secret-file", str(tmp_path), "is a folder")


def test_default_secret_under_an_unusable_home(garbage: Path, tmp_path: Path) -> None:
    """HOME is a file, so the default secret cannot be created (works also for root)."""
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    env = fx.cli_env(tmp_path)
    env.pop("MEDFUSE_KEY_SECRET_FILE")
    env["HOME"] = str(home)
    proc = subprocess.run(
        [*fx.CLI, "run", str(garbage), "--out", str(tmp_path / "r.jsonl")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    _clean_failure(proc, str(home), "MEDFUSE_KEY_SECRET_FILE")


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders; chmod restricts no one")
def test_default_secret_under_a_read_only_home(garbage: Path, tmp_path: Path) -> None:
    home = tmp_path / "ro-home"
    home.mkdir()
    home.chmod(0o500)
    env = fx.cli_env(tmp_path)
    env.pop("MEDFUSE_KEY_SECRET_FILE")
    env["HOME"] = str(home)
    try:
        proc = subprocess.run(
            [*fx.CLI, "run", str(garbage), "--out", str(tmp_path / "r.jsonl")],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        home.chmod(0o700)
    _clean_failure(proc, str(home), "MEDFUSE_KEY_SECRET_FILE")


@pytest.mark.skipif(ROOT, reason="root reads unreadable files; chmod restricts no one")
def test_unreadable_secret_file(garbage: Path, tmp_path: Path) -> None:
    secret = tmp_path / "s.secret"
    secret.write_text("ab" * 32)
    secret.chmod(0o000)
    proc = _run(
        ["run", str(garbage), "--out", str(tmp_path / "r.jsonl"), "--key-secret-file", str(secret)],
        tmp_path,
    )
    _clean_failure(proc, str(secret), "not readable")


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders; chmod restricts no one")
def test_out_in_a_read_only_folder_fails_before_discovery(garbage: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        proc = _run(["run", str(garbage), "--out", str(ro / "r.jsonl")], tmp_path)
    finally:
        ro.chmod(0o700)
    _clean_failure(proc, str(ro), "not writable")
