"""``medfuse export MODEL --out NAME.medfuse [--spec SPEC]``: export any PyTorch model to a bundle.

``MODEL`` is a ``medfuse train`` checkpoint (it carries its spec), or — with ``--spec`` (a
YAML or JSON spec file, see ``medfuse/data/spec.schema.json``) — a ``torch.export`` archive
(``.pt2``), a TorchScript file, or ``module:factory`` (an importable callable returning the
module; ``--factory-arg KEY=VALUE`` passes keyword arguments).

Runs :func:`medfuse.export.export_bundle`: ONNX with a dynamic batch axis, the TensorRT lint
(shown as a table; findings never stop the export), the parity check against PyTorch (an
error beyond tolerance does), golden vectors and the bundle. ``--golden-studies DIR`` takes
the golden vectors from real preprocessed studies (they are copied into the bundle: use
synthetic or de-identified studies only); otherwise random inputs are used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``export``'s options to its sub-parser."""
    parser.add_argument(
        "model",
        help="model.pt from `medfuse train`, a .pt2 (torch.export), a TorchScript file, "
        "or module:factory",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        default=None,
        metavar="FILE",
        help="spec file (YAML or JSON) naming the inputs and outputs; needed for every "
        "source but a `medfuse train` checkpoint",
    )
    parser.add_argument(
        "--factory-arg",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="keyword argument for a module:factory source (VALUE parsed as JSON when it is)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="bundle directory to write (NAME.medfuse)",
    )
    parser.add_argument(
        "--golden-studies",
        type=Path,
        default=None,
        metavar="DIR",
        help="studies whose preprocessed tensors become golden vectors and a parity case",
    )
    parser.add_argument(
        "--golden", type=int, default=4, metavar="N", help="number of golden studies (default 4)"
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17, default 18)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    parser.add_argument("--json", action="store_true", help="print lint and parity reports as JSON")


def run(args: argparse.Namespace) -> int:
    """Load model.pt, export, print lint and parity; exit 1 on an export error."""
    from rich.console import Console
    from rich.table import Table

    from medfuse._deps import require
    from medfuse._paths import preflight, writing
    from medfuse.cli.progress import progress_bar

    preflight(folders={"--out": args.out})
    require("torch", purpose="ONNX export")
    from medfuse.export.from_source import export_from_source
    from medfuse.export.sources import parse_factory_args

    with progress_bar("export", quiet=args.json) as update, writing(
        args.out, "write the bundle", "--out"
    ):
        done = export_from_source(
            args.model,
            args.out,
            spec_file=args.spec,
            factory_args=parse_factory_args(args.factory_arg),
            golden_studies=args.golden_studies,
            golden=args.golden,
            opset=args.opset,
            overwrite=args.overwrite,
            progress=update,
        )
    bundle, lint, parity = done.bundle, done.lint, done.parity
    if args.json:
        json.dump(done.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    out = Console()
    table = Table(title=f"TensorRT lint: {lint['errors']} error(s), {lint['warnings']} warning(s)")
    for col in ("severity", "code", "op", "message"):
        table.add_column(col)
    for f in lint["findings"]:
        table.add_row(f["severity"], f["code"], f["op_type"], f["message"])
    if lint["findings"]:
        out.print(table)
    else:
        out.print("TensorRT lint: no findings")
    ptable = Table(title=f"parity ONNX Runtime vs PyTorch (tolerance {parity['tolerance']:g})")
    ptable.add_column("output")
    ptable.add_column("worst relative error", justify="right")
    vacuous = parity.get("degenerate", {})
    for name, value in parity["worst_relative_error"].items():
        ptable.add_row(
            name, f"{value:.2e}" + (" (vacuous: see warning)" if name in vacuous else "")
        )
    out.print(ptable)
    size = done.size_bytes
    out.print(
        f"bundle written: {bundle.path} ({size / 1e6:.1f} MB, exporter {parity['export']['exporter']}, opset {parity['export']['opset']})"
    )
    return 0
