"""``medfuse run`` as a whole command against the screening script a user would write by hand.

Both run as whole processes on the same studies and bundle, interleaved (the order alternates
per round), ``--rounds`` rounds; for each: wall time, CPU time (cores busy = CPU ÷ wall) and peak
RSS of the process. Agreement: the two must give the same top-1 class per study (compared by
study key). The script is ``benchmarks/plain_screening.py`` (pydicom full reads, numpy, OpenCV,
ONNX Runtime with default options, one study at a time).

Also recorded:

- **pipeline efficiency**: ``medfuse run``'s loop throughput ÷ the bound of its slowest stage
  measured alone (one ``--workers 0 --batch 1`` run: read, preprocess and inference timed per
  study without overlap, inference on every core; discovery per study alone in this process);
  against the *plan bound*: the same with inference on the threads the run's thread plan gives
  it (the rest of the cores go to the read workers); and against the *work bound* when that
  is lower: the four stages' times summed and spread over every core (on 2 cores, stages that
  add up to more than twice the slowest cannot all overlap with it);
- **scaling** (``--scale 10,100``): whole-command seconds per study at several study counts
  (subsets of the same patients), and (``--slices 32,128,512``) at several CT slice counts
  (the synthetic CT series of ``--slice-studies`` patients resampled to that many slices).

Results: ``benchmarks/results/run_vs_script-<fingerprint>.json``. Run:
``python benchmarks/run_vs_script.py [--patients 100] [--rounds 3] [--scale 10,100]
[--slices 32,128,512]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from run_throughput import RESULTS, ensure_studies, subset

_HERE = Path(__file__).parent
# Runs a command and prints its own children's CPU seconds and peak RSS (KiB) on stderr.
_MEASURE = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE).returncode
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.flush()
print(json.dumps({"rc": rc, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mib": ru.ru_maxrss / 1024}), file=sys.stderr)
"""


def measure(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd`` as a whole process: wall and CPU seconds, peak RSS."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=False
    )
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    if stats["rc"] != 0:
        raise SystemExit(f"{cmd[:4]} failed: {proc.stderr[-2000:]}")
    stats["cores_busy"] = stats["cpu_s"] / stats["wall_s"]
    return dict(stats)


def medfuse_cmd(studies: Path, out: Path, secret: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "medfuse.cli.main",
        "run",
        str(studies),
        "--out",
        str(out),
        "--json",
        "--key-secret-file",
        str(secret),
        *extra,
    ]


def run_medfuse(studies: Path, tmp: Path, secret: Path, *extra: str) -> dict[str, Any]:
    out = tmp / f"m-{time.monotonic_ns()}.jsonl"
    summary_file = tmp / "summary.json"
    cmd = medfuse_cmd(studies, out, secret, *extra)
    stats = measure(["sh", "-c", " ".join(_q(c) for c in cmd) + f" > {_q(str(summary_file))}"])
    stats["summary"] = json.loads(summary_file.read_text())
    stats["out"] = str(out)
    return stats


def run_script(studies: Path, bundle: Path, tmp: Path) -> dict[str, Any]:
    out = tmp / f"s-{time.monotonic_ns()}.jsonl"
    stats = measure(
        [sys.executable, str(_HERE / "plain_screening.py"), str(studies), str(bundle), str(out)]
    )
    stats["out"] = str(out)
    return stats


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def agreement(medfuse_out: str, script_out: str, secret: Path) -> dict[str, int]:
    from medfuse.runtime.results import load_or_create_secret, read_results, study_key

    key = load_or_create_secret(secret)
    ours = {r.study: r.top_class for r in read_results(Path(medfuse_out)).current}
    theirs = [json.loads(line) for line in Path(script_out).read_text().splitlines()]
    same = sum(1 for t in theirs if ours.get(study_key(t["uid"], key)) == t["top"])
    return {"same_top1": same, "script_studies": len(theirs), "medfuse_studies": len(ours)}


def stage_bound(studies: Path, tmp: Path, secret: Path, *extra: str) -> dict[str, Any]:
    """Each stage measured alone: a run with no overlap (``--workers 0 --batch 1``), where
    inference has every core; and inference again with the threads the run's own plan gives
    it (the pipeline's thread plan leaves cores to the read workers)."""
    from medfuse.runtime.threads import plan_threads

    stats = run_medfuse(studies, tmp, secret, "--workers", "0", "--batch", "1", *extra)
    s = stats["summary"]
    per_study = {k: float(v) for k, v in s["timing_ms_mean"].items()}
    plan = plan_threads()
    planned = run_medfuse(
        studies, tmp, secret, "--workers", "0", "--batch", "1", "--threads",
        str(plan.intra_op), *extra,
    )  # fmt: skip
    inference_planned = float(planned["summary"]["timing_ms_mean"]["inference"])
    from medfuse.runtime.dicom import discover_studies

    t0 = time.perf_counter()
    found = discover_studies(studies)  # alone, in this process
    per_study["discovery"] = 1e3 * (time.perf_counter() - t0) / max(len(found.studies), 1)
    slowest = max(("read", "preprocess", "inference"), key=lambda k: per_study.get(k, 0.0))
    cores = os.cpu_count() or 1
    return {
        "per_study_ms": {k: round(v, 2) for k, v in per_study.items()},
        "slowest": slowest,
        "bound_studies_per_s": 1e3 / per_study[slowest],
        "plan": plan.describe(),
        "inference_ms_at_plan_threads": round(inference_planned, 2),
        # the slowest stage with the threads the pipeline gives it
        "plan_bound_studies_per_s": 1e3
        / max(inference_planned, *(per_study[k] for k in ("read", "preprocess"))),
        # all four stages' time spread over every core: no pipeline beats this either
        "work_bound_studies_per_s": 1e3 * cores / sum(per_study.values()),
    }


def make_slices(src: Path, slices: int, out: Path, patients: int) -> Path:
    """The first ``patients`` studies of ``src`` with their CT series resampled to ``slices``."""
    import cv2
    import numpy as np
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if (out / ".complete").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    for patient in sorted(p for p in src.iterdir() if p.is_dir())[:patients]:
        shutil.copytree(patient, out / patient.name)
    for patient in sorted(p for p in out.iterdir() if p.is_dir()):
        for folder in sorted(p for p in patient.rglob("*") if p.is_dir()):
            files = [f for f in sorted(folder.iterdir()) if f.is_file()]
            heads = []
            for f in files:
                try:
                    heads.append((f, pydicom.dcmread(f)))
                except Exception:
                    continue
            cts = [(f, d) for f, d in heads if str(d.get("Modality", "")) == "CT"]
            if len(cts) < 2:
                continue
            cts.sort(key=lambda fd: float(fd[1].ImagePositionPatient[2]))
            vol = np.stack([d.pixel_array for _f, d in cts]).astype(np.float32)
            d0, h, w = vol.shape
            flat = cv2.resize(vol.reshape(d0, h * w), (h * w, slices), interpolation=1)
            vol2 = np.rint(flat.reshape(slices, h, w)).astype(cts[0][1].pixel_array.dtype)
            z0 = float(cts[0][1].ImagePositionPatient[2])
            z1 = float(cts[-1][1].ImagePositionPatient[2])
            step = (z1 - z0) / max(slices - 1, 1)
            template = cts[0][1]
            series_uid = generate_uid()
            for f, _d in cts:
                f.unlink()
            for k in range(slices):
                ds = template.copy()
                ds.SeriesInstanceUID = series_uid
                ds.SOPInstanceUID = generate_uid()
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.InstanceNumber = k + 1
                pos = list(template.ImagePositionPatient)
                pos[2] = z0 + k * step
                ds.ImagePositionPatient = pos
                ds.SliceThickness = abs(step) or 1.0
                ds.PixelData = vol2[k].tobytes()
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # written uncompressed
                ds.save_as(folder / f"CT{k:04d}", enforce_file_format=True)
    (out / ".complete").write_text("ok\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--round-studies",
        type=int,
        default=100,
        help="studies the interleaved rounds run on (the first N patients; default 100)",
    )
    ap.add_argument("--scale", default="", help="study counts, e.g. 10,100 (subsets)")
    ap.add_argument("--slices", default="", help="CT slice counts, e.g. 32,128,512")
    ap.add_argument("--slice-studies", type=int, default=10)
    ap.add_argument("--workdir", type=Path, default=Path("~/.cache/medfuse/bench").expanduser())
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--note", default="", help="a note stored with the results")
    ap.add_argument(
        "--precision",
        default="fp32",
        help="medfuse's variant (default fp32: the script's model; 'auto' for the default pick)",
    )
    args = ap.parse_args(argv)

    from medfuse.bundle import open_bundle
    from medfuse.bundle.reference import reference_bundle_path
    from medfuse.devices.fingerprint import bundle_facts, device_fingerprint, fingerprint_id

    bundle = reference_bundle_path()
    fp = device_fingerprint(bundle_facts(open_bundle(bundle)))
    args.workdir.mkdir(parents=True, exist_ok=True)
    every = ensure_studies(args.workdir, args.patients)
    n_round = min(args.round_studies, args.patients)
    studies = every if n_round >= args.patients else subset(every, n_round, args.workdir)
    report: dict[str, Any] = {
        "benchmark": "run_vs_script",
        "fingerprint": fp,
        "config": {
            "patients": args.patients,
            "round_studies": n_round,
            "rounds": args.rounds,
            "cores": os.cpu_count(),
            "precision": args.precision,
        },
        "note": args.note,
        "rounds": [],
    }
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        secret = tmp / "secret"
        run_medfuse(subset(studies, 2, args.workdir), tmp, secret)  # page cache, secret
        run_script(subset(studies, 2, args.workdir), bundle, tmp)
        for r in range(args.rounds):
            order = ("medfuse", "script") if r % 2 == 0 else ("script", "medfuse")
            got: dict[str, Any] = {}
            for who in order:
                got[who] = (
                    run_medfuse(studies, tmp, secret, "--precision", args.precision)
                    if who == "medfuse"
                    else run_script(studies, bundle, tmp)
                )
            got["agreement"] = agreement(got["medfuse"]["out"], got["script"]["out"], secret)
            got["ratio"] = got["script"]["wall_s"] / got["medfuse"]["wall_s"]
            for who in ("medfuse", "script"):
                got[who].pop("out")
            report["rounds"].append(got)
            print(
                f"round {r + 1}: medfuse {got['medfuse']['wall_s']:.2f} s, script "
                f"{got['script']['wall_s']:.2f} s, ratio {got['ratio']:.2f}x, "
                f"agreement {got['agreement']['same_top1']}/{got['agreement']['script_studies']}",
                file=sys.stderr,
            )
        bound = stage_bound(studies, tmp, secret, "--precision", args.precision)
        loops = [g["medfuse"]["summary"]["studies_per_s"] for g in report["rounds"]]
        bound["loop_studies_per_s_median"] = statistics.median(loops)
        bound["efficiency"] = bound["loop_studies_per_s_median"] / bound["bound_studies_per_s"]
        bound["efficiency_vs_work_bound"] = bound["loop_studies_per_s_median"] / min(
            bound["bound_studies_per_s"], bound["work_bound_studies_per_s"]
        )
        bound["efficiency_vs_plan_bound"] = (
            bound["loop_studies_per_s_median"] / bound["plan_bound_studies_per_s"]
        )
        report["stages_alone"] = bound
        ratios = [g["ratio"] for g in report["rounds"]]
        report["summary"] = {
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "efficiency": bound["efficiency"],
            "efficiency_vs_work_bound": bound["efficiency_vs_work_bound"],
            "efficiency_vs_plan_bound": bound["efficiency_vs_plan_bound"],
            "discovery_ms_per_study": bound["per_study_ms"]["discovery"],
            "medfuse_cores_busy": statistics.median(
                g["medfuse"]["cores_busy"] for g in report["rounds"]
            ),
            "script_cores_busy": statistics.median(
                g["script"]["cores_busy"] for g in report["rounds"]
            ),
            "medfuse_peak_rss_mib": max(g["medfuse"]["peak_rss_mib"] for g in report["rounds"]),
            "script_peak_rss_mib": max(g["script"]["peak_rss_mib"] for g in report["rounds"]),
        }
        if args.scale:
            report["scale_studies"] = []
            for n in (int(x) for x in args.scale.split(",")):
                folder = every if n >= args.patients else subset(every, n, args.workdir)
                got = run_medfuse(folder, tmp, secret, "--precision", args.precision)
                report["scale_studies"].append(
                    {
                        "studies": n,
                        "wall_s": got["wall_s"],
                        "s_per_study": got["wall_s"] / n,
                        "peak_rss_mib": got["peak_rss_mib"],
                        "cores_busy": got["cores_busy"],
                    }
                )
        if args.slices:
            report["scale_slices"] = []
            for k in (int(x) for x in args.slices.split(",")):
                folder = make_slices(
                    every,
                    k,
                    args.workdir / f"slices-{k}-{args.slice_studies}",
                    args.slice_studies,
                )
                got = run_medfuse(folder, tmp, secret, "--precision", args.precision)
                n = max(got["summary"]["screened"], 1)
                report["scale_slices"].append(
                    {
                        "ct_slices": k,
                        "wall_s": got["wall_s"],
                        "s_per_study": got["wall_s"] / n,
                        "read_ms_per_study": got["summary"]["timing_ms_mean"].get("read"),
                        "read_ms_per_slice": (got["summary"]["timing_ms_mean"].get("read") or 0)
                        / k,
                    }
                )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"run_vs_script-{fingerprint_id(fp)}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["summary"], indent=1))
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
