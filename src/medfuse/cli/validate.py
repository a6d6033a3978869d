"""``medfuse validate``: check a bundle's golden vectors on this machine.

A thin layer over :func:`medfuse.runtime.validate.validate_bundle`: runs ``golden.npz`` through
the selected (default: every available) backend × variant, prints a table (or the report as
JSON with ``--json``), writes ``--report FILE``, and exits 0 when every run passed, 1 otherwise
(including damaged files: an integrity failure is a failed run with a clean message).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medfuse.cli.options import BACKEND_NAMES, add_session_options, add_trust_options, names
from medfuse.errors import UsageError

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``medfuse validate``'s arguments to ``parser``."""
    add_trust_options(parser)
    parser.add_argument(
        "bundle",
        nargs="?",
        default=None,
        metavar="BUNDLE",
        help="bundle folder or zip (default: the shipped reference bundle)",
    )
    add_session_options(parser, many=True)
    parser.add_argument(
        "--report", type=Path, default=None, metavar="FILE", help="write the report as JSON (- = stdout)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as JSON instead of a table"
    )


def _table(data: dict[str, Any]) -> None:
    from medfuse.cli.tables import Column, render_table

    model = data["model"]
    dev = data["device"]
    rows = []
    for check in data["checks"]:
        head = [check["backend"], check["precision"], check["device"] or "-"]
        if check["error"]:
            rows.append([*head, "-", "-", "-", "-", f"FAIL: {check['error']}"])
            continue
        for out in check["outputs"]:
            err = out["max_abs_error"]
            top1 = out["top1_agreement"]
            rows.append(
                [
                    *head,
                    out["name"],
                    "nan" if err is None else f"{err:.3g}",
                    f"{out['allowed_max_abs_error']:.3g}",
                    "-" if top1 is None else f"{top1:.3f}",
                    "pass" if out["passed"] else "FAIL",
                ]
            )
    columns = (
        Column("backend", key=True),
        Column("variant", key=True),
        Column("device", "dev", "device"),
        Column("output", key=True),
        Column("max abs err", "err", "max abs error vs golden", right=True),
        Column("allowed", "tol", "allowed max abs error", right=True),
        Column("top-1", right=True),
        Column("result", wrap=True),
    )
    title = (
        f"bundle {data['bundle']['label']}: {model['name']} {model['version']} — "
        f"{dev['cpu_model']} ({dev['cpu_cores']} cores), onnxruntime {dev['onnxruntime']}"
    )
    sys.stdout.write(render_table(columns, rows, title=title))


def run(args: argparse.Namespace) -> int:
    """Validate; exit 0 when every backend × variant passed, 1 otherwise."""
    from medfuse._paths import preflight
    from medfuse.runtime.validate import validate_bundle

    preflight(files={"--report": args.report})
    backends = names(args.backends)
    unknown = [b for b in backends if b not in BACKEND_NAMES]
    if unknown:
        raise UsageError(f"--backend {unknown}: choose from {', '.join(BACKEND_NAMES)}")
    report = validate_bundle(
        args.bundle,
        backends=backends or None,
        variants=names(args.variants) or None,
        device=args.device,
        threads=args.threads,
    )
    data = report.to_dict()
    if args.report is not None:
        from medfuse.cli.output import write_output

        write_output(args.report, json.dumps(data, indent=2) + "\n", "--report")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _table(data)
    if report.passed:
        if not args.json:
            print(f"validation passed: {len(report.checks)} backend × variant run(s)")
        return 0
    print("medfuse validate: validation FAILED:", file=sys.stderr)
    for line in report.failures():
        print(f"  {line}", file=sys.stderr)
    return 1
