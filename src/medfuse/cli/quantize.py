"""``medfuse quantize``: INT8 / FP16 variants of a bundle behind an accuracy gate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["configure", "run"]


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
    from medfuse.calibration.report import render_markdown
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
    result = quantize_bundle(
        args.bundle,
        args.calib,
        config,
        heldout=args.heldout,
        progress=lambda msg: print(f"medfuse quantize: {msg}", file=sys.stderr),
    )
    if args.json:
        json.dump(result.report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_markdown(result.report))
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
