"""``medfuse quantize``: INT8 / FP16 variants of a bundle behind an accuracy gate."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["configure", "report_text", "run"]


def _floats_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``quantize``'s options to its sub-parser."""
    parser.add_argument("bundle", type=Path, help="bundle directory with an fp32 variant")
    parser.add_argument(
        "--calib", type=Path, required=True, metavar="DIR", help="calibration DICOM studies"
    )
    parser.add_argument(
        "--precision",
        type=_floats_list,
        default=("int8", "fp16"),
        metavar="LIST",
        help="comma list of int8, fp16 (default int8,fp16)",
    )
    parser.add_argument(
        "--method",
        choices=("minmax", "entropy", "percentile"),
        default="minmax",
        help="activation-range calibration (default minmax, as TensorRT Model Optimizer's INT8)",
    )
    parser.add_argument(
        "--target",
        choices=("tensorrt", "cpu", "both"),
        default="tensorrt",
        help="INT8 layout: tensorrt (int8), cpu (int8-cpu) or both",
    )
    parser.add_argument("--max-calib", type=int, default=64, metavar="N")
    parser.add_argument("--min-calib", type=int, default=8, metavar="N")
    parser.add_argument("--gate-agreement", type=float, default=0.99, metavar="F")
    parser.add_argument("--gate-auroc-drop", type=float, default=0.01, metavar="F")
    parser.add_argument(
        "--gate-max-drift",
        type=float,
        default=None,
        metavar="F",
        help="largest absolute output drift (default: not gated)",
    )
    parser.add_argument(
        "--heldout",
        type=Path,
        default=None,
        metavar="DIR",
        help="labelled held-out studies, disjoint from --calib",
    )
    parser.add_argument(
        "--exclude",
        type=_floats_list,
        default=(),
        metavar="NODES",
        help="comma list of node names kept in float",
    )
    parser.add_argument(
        "--no-sensitivity", action="store_true", help="do not exclude sensitive nodes"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="calibration-range cache")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Quantize, print the report; exit 1 when a variant fails the gate (it is not written)."""
    from medfuse.calibration import GateConfig, QuantizeConfig, quantize_bundle
    from medfuse.cli.progress import progress_bar
    from medfuse.errors import MedfuseError, UsageError

    try:
        config = QuantizeConfig(
            precisions=tuple(args.precision),
            calibrate_method=args.method,
            target=args.target,
            max_calib=args.max_calib,
            min_calib=args.min_calib,
            nodes_to_exclude=tuple(args.exclude),
            gate=GateConfig(
                min_agreement=args.gate_agreement,
                max_auroc_drop=args.gate_auroc_drop,
                max_logit_drift=args.gate_max_drift,
            ),
            sensitivity=not args.no_sensitivity,
            cache_dir=args.cache_dir,
            plots=not args.no_plots,
        )
    except MedfuseError as exc:
        raise UsageError(str(exc)) from exc
    # Stages quantize_bundle announces: scan, held-out (optional), calibrate (INT8), one per
    # variant made; the bar counts them.
    int8 = len(config.int8_precisions)
    stages = 1 + (args.heldout is not None) + (1 + int8 if int8 else 0)
    stages += "fp16" in config.precisions
    done = [-1]

    with progress_bar("quantize", quiet=args.json) as update:

        def on_stage(msg: str) -> None:
            done[0] += 1
            update(done[0], stages, msg)

        result = quantize_bundle(
            args.bundle, args.calib, config, heldout=args.heldout, progress=on_stage
        )
    if args.json:
        json.dump(result.report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report_text(result.report))
    if not result.passed:
        failed = [p for p, v in result.variants.items() if not v.passed]
        kept = (
            f"added only {', '.join(result.written)} to {result.bundle.label}"
            if result.written
            else "the bundle is unchanged"
        )
        print(
            f"medfuse quantize: gate failed for {', '.join(failed)} (not written); {kept}",
            file=sys.stderr,
        )
        return 1
    print(
        f"medfuse quantize: added {', '.join(result.variants)} to {result.bundle.label}",
        file=sys.stderr,
    )
    return 0


def report_text(report: Mapping[str, Any], width: int | None = None) -> str:
    """The quantization report for a terminal: gate in words, one table, failures, kept
    nodes (the Markdown form is in the bundle, ``reports/quantization.md``)."""
    from medfuse.calibration.report import gate_rows, gate_sentence
    from medfuse.cli.tables import Column, render_table, terminal_width

    limit = width if width is not None else terminal_width()
    cal = report.get("calibration", {})
    head = [
        f"quantization of {report.get('model', '')}: calibration {cal.get('method')}, "
        f"{cal.get('studies')} studies",
        f"gate: {gate_sentence(report.get('gate', {}))}",
    ]
    out = "".join("\n".join(textwrap.wrap(line, limit)) + "\n" for line in head)
    out += render_table(
        (
            Column("variant", key=True),
            Column("passed", "ok", "passed the gate"),
            Column("output", key=True),
            Column("agreement", "agree", "top-1 agreement with fp32", right=True),
            Column("flipped (max fp32 margin)", "flip", "disagreements (largest fp32 margin)"),
            Column("AUROC drop", "dAUC", "AUROC drop vs fp32", right=True),
            Column("MAE change", "dMAE", "MAE change vs fp32", right=True, drop=2),
            Column("max drift", "drift", "max |output - fp32|", right=True),
            Column("mean drift", "mean", "mean |output - fp32|", right=True, drop=1),
        ),
        gate_rows(report),
        width=limit,
    )
    for prec, v in report.get("variants", {}).items():
        if v.get("failures"):
            out += "\n".join(textwrap.wrap(f"{prec} failed: " + "; ".join(v["failures"]), limit))
            out += "\n"
        kept = [s["node"] for s in v.get("sensitivity", {}).get("steps", [])]
        if kept:
            out += "\n".join(textwrap.wrap(f"{prec}: kept in float: {', '.join(kept)}", limit))
            out += "\n"
        for t in v.get("cpu_candidates") or ():
            out += f"{prec}: CPU layout {t['layout']}: {t['ms']:.3g} ms, passed {t['passed']}\n"
    return out
