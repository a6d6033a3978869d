"""Every verb checks its output paths and the packages its flags need before the long work:
one clean line naming the path, exit 2 (a missing package: exit 1), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import screening_fixtures as fx
from medfuse._paths import check_output_dir, check_output_file, check_secret_file, writing
from medfuse.errors import FileAccessError

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False

# The real CLI with matplotlib made unimportable, as on an install without the plots extra.
NO_MATPLOTLIB = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("blocked for this test: " + name)
        return None
sys.meta_path.insert(0, Block())
from medfuse.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _cli(
    args: list[str], tmp: Path, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or fx.CLI), *args],
        capture_output=True,
        text=True,
        env=fx.cli_env(tmp),
        timeout=300,
    )


def _one_line(proc: subprocess.CompletedProcess[str], rc: int, *needles: str) -> None:
    assert proc.returncode == rc, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == "", "the verb worked before it failed"
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("medfuse ")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.fixture()
def blocked(tmp_path: Path) -> Path:
    """A path whose parent is a file: unusable also for root."""
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "out"


def test_bench_json_into_an_unusable_folder_fails_before_measuring(
    tmp_path: Path, blocked: Path
) -> None:
    proc = _cli(["bench", "--json", str(blocked), "--max-seconds", "5"], tmp_path)
    _one_line(proc, 2, "--json", str(blocked), "is a file, not a folder")
    assert "measuring" not in proc.stderr


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders; chmod restricts no one")
def test_bench_json_into_a_read_only_folder_fails_before_measuring(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        proc = _cli(["bench", "--json", str(ro / "b.json"), "--max-seconds", "5"], tmp_path)
    finally:
        ro.chmod(0o700)
    _one_line(proc, 2, "--json", str(ro), "not writable")
    assert "measuring" not in proc.stderr


def test_bench_plot_without_matplotlib_fails_before_measuring(tmp_path: Path) -> None:
    proc = _cli(
        ["bench", "--plot", str(tmp_path / "p.png"), "--max-seconds", "5"],
        tmp_path,
        prefix=[sys.executable, "-c", NO_MATPLOTLIB],
    )
    _one_line(proc, 1, "--plot", "matplotlib", "medfuse[plots]")
    assert "measuring" not in proc.stderr


def test_bench_compare_json_into_an_unusable_folder(tmp_path: Path, blocked: Path) -> None:
    proc = _cli(["bench", "compare", str(tmp_path / "x.json"), "--json", str(blocked)], tmp_path)
    _one_line(proc, 2, "--json", str(blocked))


def test_validate_report_into_an_unusable_folder_fails_before_validating(
    tmp_path: Path, blocked: Path
) -> None:
    proc = _cli(["validate", "--report", str(blocked)], tmp_path)
    _one_line(proc, 2, "--report", str(blocked))


@pytest.mark.parametrize(
    "verb",
    [
        ["synth", "--patients", "1", "--out"],
        ["demo", "--studies", "1", "--out"],
        ["export-triton", "nonexistent.medfuse", "--out"],
    ],
)
def test_folder_outputs_under_a_file_are_refused(
    verb: list[str], tmp_path: Path, blocked: Path
) -> None:
    proc = _cli([*verb, str(blocked)], tmp_path)
    _one_line(proc, 2, "--out", str(blocked))


def test_synth_out_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    proc = _cli(["synth", "--patients", "1", "--out", str(target)], tmp_path)
    _one_line(proc, 2, "--out", str(target), "it is a file")


def test_scan_secret_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    proc = _cli(["scan", str(tmp_path / "s"), "--key-secret-file", str(tmp_path)], tmp_path)
    _one_line(proc, 2, "--key-secret-file", "is a folder")


def test_the_policy_in_process(tmp_path: Path, blocked: Path) -> None:
    assert check_output_file(tmp_path / "new" / "deeper" / "f.json") == (
        tmp_path / "new" / "deeper" / "f.json"
    )
    assert check_output_dir(tmp_path / "new-dir") == tmp_path / "new-dir"
    for check in (check_output_file, check_output_dir, check_secret_file):
        with pytest.raises(FileAccessError, match=str(blocked)):
            check(blocked)
    with pytest.raises(FileAccessError, match="is a folder"):
        check_output_file(tmp_path)
    if os.path.exists("/dev/full"):
        with (
            pytest.raises(FileAccessError, match=r"/dev/full \(ENOSPC"),
            writing("/dev/full", flag="--json"),
            open("/dev/full", "w") as fh,
        ):
            fh.write("x")


def test_every_cache_follows_one_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extracted bundles, calibration sets and the demo's studies share one cache folder:
    $MEDFUSE_CACHE_DIR, else $XDG_CACHE_HOME/medfuse, else ~/.cache/medfuse."""
    from medfuse._paths import cache_dir
    from medfuse.bundle.archive import bundle_cache_dir
    from medfuse.calibration.config import default_cache_dir
    from medfuse.cli.demo import cache_root

    def where() -> list[Path]:
        return [bundle_cache_dir().parent, default_cache_dir().parent, cache_root(), cache_dir()]

    monkeypatch.setenv("MEDFUSE_CACHE_DIR", str(tmp_path / "mine"))
    assert where() == [tmp_path / "mine"] * 4
    monkeypatch.delenv("MEDFUSE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert where() == [tmp_path / "xdg" / "medfuse"] * 4
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert where() == [tmp_path / "home" / ".cache" / "medfuse"] * 4
    assert bundle_cache_dir().name == "bundles" and default_cache_dir().name == "calibration"


def test_a_failing_input_inside_a_writing_block_is_not_blamed_on_the_output(
    tmp_path: Path,
) -> None:
    """export / train / export-triton read their inputs inside ``writing(--out)``: a missing
    input is said to be an input (and not named: it may sit in a studies folder), while the
    output, anything below it and its temporary siblings stay the output's fault."""
    import errno

    out = tmp_path / "bundle.medfuse"
    secret_input = tmp_path / "studies" / "Doe^Jane" / "1.dcm"
    with pytest.raises(FileAccessError) as info, writing(out, "write the bundle", "--out"):
        secret_input.read_bytes()
    msg = str(info.value)
    assert "not part of it" in msg and "ENOENT" in msg and "Doe" not in msg
    for own in (out, out / "model.onnx", tmp_path / ".bundle.medfuse.tmp-ab12"):
        with pytest.raises(FileAccessError) as info, writing(out, "write the bundle", "--out"):
            raise PermissionError(errno.EACCES, "Permission denied", str(own))
        assert "(EACCES: permission denied" in str(info.value)
        assert "not part of it" not in str(info.value)
