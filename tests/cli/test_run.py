"""``medfuse run`` end to end in a subprocess: results, exit codes, kill + resume, privacy, lean."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import screening_fixtures as fx

N_PATIENTS = 4

# Runs the real CLI with torch and onnx made unimportable (as on a base install).
LEAN = fx.BLOCK_HEAVY_IMPORTS + """
import json
from medfuse.cli.main import main
rc = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "onnx"})
print(json.dumps({"heavy_modules": heavy}), file=sys.stderr)
sys.exit(rc)
"""

# Runs the real CLI, pausing after each durable line so that a kill lands mid-run.
SLOW_WRITES = """
import sys, time
import medfuse.runtime.results.io as rio
write = rio.ResultsWriter.write
def slow_write(self, record):
    write(self, record)
    time.sleep(0.5)
rio.ResultsWriter.write = slow_write
from medfuse.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(fx.shipped_or_tiny_bundle(tmp_path_factory.mktemp("bundle")))


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medfuse.synthetic import generate_studies

    root = tmp_path_factory.mktemp("studies") / "in"
    generate_studies(root, N_PATIENTS, seed=5)
    fx.make_error_study(root)
    (root / "garbage.dcm").write_bytes(bytes(range(256)) * 8)
    return root


def _run(
    args: list[str], env_root: Path, *, prefix: list[str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    cmd = prefix if prefix is not None else fx.CLI
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=fx.cli_env(env_root), timeout=timeout
    )


def _keys(path: Path) -> list[str]:
    return [json.loads(line)["study"] for line in path.read_text().splitlines()]


def test_run_writes_jsonl_csv_and_a_json_summary(
    studies: Path, bundle: Path, tmp_path: Path
) -> None:
    out, csv_path = tmp_path / "r.jsonl", tmp_path / "r.csv"
    proc = _run(
        [
            "run",
            str(studies),
            "--bundle",
            str(bundle),
            "--out",
            str(out),
            "--csv",
            str(csv_path),
            "--json",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["by_status"] == {"ok": N_PATIENTS, "error": 1}
    assert summary["studies_per_s"] > 0
    assert len(_keys(out)) == N_PATIENTS + 1
    with csv_path.open(newline="") as fh:
        assert [r["study"] for r in csv.DictReader(fh)] == _keys(out)
    assert (tmp_path / "home" / "study-key.secret").is_file()  # created on first use


def test_run_prints_tables_without_json(studies: Path, bundle: Path, tmp_path: Path) -> None:
    proc = _run(
        ["run", str(studies), "--bundle", str(bundle), "--out", str(tmp_path / "r.jsonl")], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for text in ("status ok", "status error", "error PixelDataLengthError", "not_dicom", "studies/s"):
        assert text in proc.stdout


def test_existing_results_without_resume_exit_2(
    tmp_path: Path, studies: Path, bundle: Path
) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text('{"study": "x", "status": "ok"}\n')
    proc = _run(["run", str(studies), "--bundle", str(bundle), "--out", str(out)], tmp_path)
    assert proc.returncode == 2
    assert "--resume" in proc.stderr
    assert out.read_text() == '{"study": "x", "status": "ok"}\n'


def test_bad_arguments_exit_2(tmp_path: Path, studies: Path) -> None:
    proc = _run(["run", str(studies), "--out", str(tmp_path / "r.jsonl"), "--batch", "0"], tmp_path)
    assert proc.returncode == 2
    assert "batch" in proc.stderr


def test_a_folder_without_dicom_exits_1_with_a_clear_message(tmp_path: Path, bundle: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing")
    proc = _run(
        [
            "run",
            str(tmp_path / "empty"),
            "--bundle",
            str(bundle),
            "--out",
            str(tmp_path / "r.jsonl"),
        ],
        tmp_path,
    )
    assert proc.returncode == 1
    assert "no DICOM image study found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_bundle_exits_1(tmp_path: Path, studies: Path) -> None:
    (tmp_path / "bad.medfuse").mkdir()
    proc = _run(
        [
            "run",
            str(studies),
            "--bundle",
            str(tmp_path / "bad.medfuse"),
            "--out",
            str(tmp_path / "r.jsonl"),
        ],
        tmp_path,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(
    studies: Path, bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.jsonl"
    args = [
        "run",
        str(studies),
        "--bundle",
        str(bundle),
        "--out",
        str(out),
        "--batch",
        "1",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITES, *args],
        env=fx.cli_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = _keys(out)
    assert 2 <= len(done_before) < N_PATIENTS + 1
    # What a power cut inside a write would leave: half a record, no newline.
    with out.open("ab") as fh:
        fh.write(b'{"study":"0123456789abcdef","status":"o')

    resumed = _run([*args, "--resume", "--csv", str(tmp_path / "r.csv"), "--json"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    keys = _keys(out)  # every line parses: the torn one was truncated before appending
    assert len(keys) == len(set(keys)) == N_PATIENTS + 1
    assert keys[: len(done_before)] == done_before
    assert summary["already_done"] == len(done_before)
    assert summary["screened"] == N_PATIENTS + 1 - len(done_before)
    assert summary["torn_bytes_dropped"] > 0
    with (tmp_path / "r.csv").open(newline="") as fh:
        assert [r["study"] for r in csv.DictReader(fh)] == keys


def test_run_works_without_torch_or_onnx(studies: Path, bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    args = ["run", str(studies), "--bundle", str(bundle), "--out", str(out), "--json"]
    proc = _run(args, tmp_path, prefix=[sys.executable, "-c", LEAN])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == {"heavy_modules": []}
    assert json.loads(proc.stdout)["by_status"] == {"ok": N_PATIENTS, "error": 1}


@pytest.fixture(scope="module")
def phi_studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic studies in patient-named folders, sentinel PHI in every header, a corrupt
    file and a truncated study."""
    from medfuse.synthetic import generate_studies

    root = tmp_path_factory.mktemp("phi") / "incoming"
    generate_studies(root, 3, seed=11, phi_folder_names=True)
    fx.plant_phi(root)
    fx.plant_coded_sentinels(sorted(p for p in root.iterdir() if p.is_dir()))
    fx.make_error_study(root)
    (root / fx.PHI_FOLDER / "corrupt.dcm").write_bytes(b"DICM" + bytes(range(200)))
    return root


def _forbidden(root: Path) -> set[str]:
    """Everything that must not leak: sentinels, every UID, every path below ``root``."""
    needles = set(fx.PHI_SENTINELS.values()) | fx.dicom_uids(root) | fx.header_strings(root)
    needles |= set(fx.CODED_SENTINELS.values()) | {"ZZCODED"}
    needles |= {fx.PHI_FOLDER, str(root)}
    needles |= {"ZZDOE", "MRN99887766"}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        needles.add(str(rel))
        needles.update(part for part in rel.parts if len(part) >= 6 and not part.isdigit())
    needles -= {"labels.csv", "labels.key", "notes.txt", "thumbs.db"}  # generator's own files
    return needles


def test_no_phi_uid_or_input_path_in_results_or_output(
    phi_studies: Path, bundle: Path, tmp_path: Path
) -> None:
    forbidden = _forbidden(phi_studies)
    assert len(fx.dicom_uids(phi_studies)) > 50
    texts: dict[str, str] = {}
    for i, extra in enumerate((["-v"], ["-v", "-v", "--json"])):
        out, csv_path = tmp_path / f"r{i}.jsonl", tmp_path / f"r{i}.csv"
        proc = _run(
            [
                "run",
                str(phi_studies),
                "--bundle",
                str(bundle),
                "--out",
                str(out),
                "--csv",
                str(csv_path),
                *extra,
            ],
            tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        texts.update(
            {
                f"stdout{i}": proc.stdout,
                f"stderr{i}": proc.stderr,
                f"jsonl{i}": out.read_text(),
                f"csv{i}": csv_path.read_text(),
            }
        )
    for extra in (["-v", "-v"], ["-v", "-v", "--json"]):  # the dry run, too
        proc = _run(["scan", str(phi_studies), "--bundle", str(bundle), *extra], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        texts[f"scan-stdout{len(extra)}"] = proc.stdout
        texts[f"scan-stderr{len(extra)}"] = proc.stderr
    assert '"status":"error"' in texts["jsonl0"]  # the truncated study is in the results
    # the junk values were met and reported as what they are, without being quoted
    assert "PhotometricInterpretation unknown" in texts["jsonl0"]
    assert "Modality unknown" in texts["jsonl0"]
    assert "its VOILUTFunction cannot be used" in texts["jsonl0"]  # judged from the header
    leaks = {(name, n) for name, text in texts.items() for n in forbidden if n in text}
    assert not leaks, sorted(leaks)[:10]
