"""``medfuse devices``: the device catalog, and what this machine was detected as."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``devices``' options to its sub-parser."""
    parser.add_argument("--json", action="store_true",
                        help='print {"catalog": [...], "jetpack": [...], "detected": {...}} as JSON')


def run(args: argparse.Namespace) -> int:
    """Print the catalog and the detected device (a table, or JSON with ``--json``)."""
    from medfuse.devices.catalog import load_catalog
    from medfuse.devices.detect import detect_device

    catalog = load_catalog()
    detected = detect_device(catalog)
    if args.json:
        doc = {
            "catalog": [e.to_dict() for e in catalog.devices],
            "jetpack": [r.to_dict() for r in catalog.jetpack],
            "detected": detected.to_dict(),
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0

    from rich.console import Console
    from rich.table import Table

    out = Console()
    table = Table(title="medfuse device catalog (* = contains unconfirmed facts)")
    for col in ("key", "device", "CC", "memory", "DLA", "precisions", "workspace", "batches"):
        table.add_column(col, justify="right" if col in ("CC", "DLA", "workspace") else "left")
    for e in catalog.devices:
        mark = "*" if e.uncertain else ""
        here = " ◀ this machine" if e.key == detected.catalog_key else ""
        table.add_row(
            e.key + mark,
            e.name + here,
            e.compute_capability,
            f"{e.memory_gib} GB{' shared' if e.memory_shared else ''}",
            str(e.dla_cores),
            ", ".join(e.precisions),
            f"{e.build_defaults.workspace_mib} MiB",
            ",".join(str(b) for b in e.build_defaults.batch_sizes),
        )
    out.print(table)

    jp = Table(title="JetPack releases (* = contains unconfirmed facts)")
    for col in ("JetPack", "L4T", "Ubuntu", "Python", "CUDA", "TensorRT", "modules"):
        jp.add_column(col)
    for r in catalog.jetpack:
        trt = r.tensorrt + (f" (+{r.tensorrt_optional} SBSA)" if r.tensorrt_optional else "")
        jp.add_row(r.jetpack + ("*" if r.uncertain else ""), r.l4t or "?", r.ubuntu, r.python,
                   r.cuda, trt, ", ".join(r.modules))
    out.print(jp)

    det = Table(title="detected here", show_header=False)
    det.add_column("field")
    det.add_column("value")
    for key, value in detected.to_dict().items():
        if value in (None, [], ()):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
        elif isinstance(value, list):
            value = "; ".join(str(v) for v in value)
        det.add_row(key, str(value))
    out.print(det)
    return 0
