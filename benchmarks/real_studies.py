"""Real scanner studies: what ``medfuse scan`` and ``medfuse run`` say about pydicom's test data.

Copies every file pydicom ships for its tests (``pydicom/data/test_files``, the
``dicomdirtests`` tree of real CT, MR and CR studies included) and every file of the
``pydicom-data`` package into one folder, then runs the dry run and the screening run on it
with the shipped reference bundle, and records per status, per reason and per warning how many
studies and series there are, and whether scan and run agree on every study.

This is not a speed benchmark: it is the record of how the runtime judges data nobody here
wrote. Writes ``benchmarks/results/real_studies-<fingerprint-id>.json``.

Run: ``python benchmarks/real_studies.py [--bundle B] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id

HERE = Path(__file__).resolve().parent


def build_tree(root: Path) -> dict[str, int]:
    """Copy pydicom's test files and pydicom-data's files under ``root``; returns file counts."""
    import pydicom

    counts = {}
    test_files = Path(pydicom.__file__).parent / "data" / "test_files"
    shutil.copytree(test_files, root / "pydicom")
    counts["pydicom"] = sum(1 for p in (root / "pydicom").rglob("*") if p.is_file())
    try:
        import data_store  # pydicom-data
    except ImportError:
        counts["pydicom-data"] = 0
    else:
        shutil.copytree(Path(data_store.__file__).parent / "data", root / "pydicom-data")
        counts["pydicom-data"] = sum(1 for p in (root / "pydicom-data").rglob("*") if p.is_file())
    return counts


def run(bundle: str | None, work: Path) -> dict[str, Any]:
    from medfuse.runtime.results import read_results
    from medfuse.runtime.scan import scan_studies
    from medfuse.runtime.screening import screen_studies

    tree = work / "studies"
    files = build_tree(tree)
    secret = work / "key.secret"
    scan = scan_studies(tree, bundle=bundle, key_secret_file=secret)
    out = work / "results.jsonl"
    summary = screen_studies(tree, out, bundle=bundle, key_secret_file=secret)
    records = {r.study: r for r in read_results(out).records}
    disagree = 0
    for s in scan.studies:
        rec = records[s.study]
        same_status = s.status == ("usable" if rec.ok else rec.status)
        same_series = rec.provenance is not None and {
            n: u.series for n, u in s.provenance.inputs.items()
        } == {n: u.series for n, u in rec.provenance.inputs.items()}
        disagree += not (same_status and same_series)
    ok_without_input = sum(
        1 for r in records.values() if r.ok and (r.provenance is None or not r.provenance.present)
    )
    return {
        "files": files,
        "studies": len(records),
        "run": {
            "by_status": dict(summary.by_status),
            "errors_by_type": dict(summary.errors_by_type),
            "reasons": dict(summary.reasons),
            "warnings": dict(summary.warnings),
            "skipped_files": dict(summary.skipped_files),
            "ok_without_an_input": ok_without_input,
            "modalities_of_ok": dict(
                Counter("+".join(r.modalities_used) for r in records.values() if r.ok)
            ),
        },
        "scan": {
            "headline": scan.headline(),
            "by_status": dict(scan.by_status),
            "series_reasons": dict(scan.series_reasons),
            "elapsed_s": round(scan.elapsed_s, 3),
        },
        "scan_and_run_disagree_on": disagree,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None, help="bundle (default: the shipped reference)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="medfuse-real-") as tmp:
        os.environ.setdefault("MEDFUSE_CACHE_DIR", str(Path(tmp) / "cache"))
        result = run(args.bundle, Path(tmp))
    result["command"] = "python benchmarks/real_studies.py" + (
        f" --bundle {args.bundle}" if args.bundle else ""
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"real_studies-{fingerprint_id(device_fingerprint())}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
