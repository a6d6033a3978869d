"""``medfuse devices``: the device catalog, and what this machine was detected as."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``devices``' options to its sub-parser."""
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"catalog": [...], "jetpack": [...], "detected": {...}} as JSON',
    )


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

    from medfuse.cli.tables import Column, render_table

    rows = []
    for e in catalog.devices:
        here = " (this machine)" if e.key == detected.catalog_key else ""
        rows.append(
            [
                e.key,
                ("* " if e.uncertain else "") + e.name + here,
                e.compute_capability,
                f"{e.memory_gib} GB{' shared' if e.memory_shared else ''}",
                str(e.dla_cores),
                ",".join(e.precisions),
                f"{e.build_defaults.workspace_mib}",
                ",".join(str(b) for b in e.build_defaults.batch_sizes),
            ]
        )
    out = render_table(
        (
            Column("key", key=True),
            Column("device", wrap=True),
            Column("CC", right=True),
            Column("memory", "mem", "memory", wrap=True),
            Column("DLA", right=True, drop=1),
            Column("precisions", "prec", "precisions", wrap=True),
            Column("workspace MiB", "ws", "build workspace, MiB", right=True, drop=2),
            Column("batches", "batch", "build batch sizes", wrap=True),
        ),
        rows,
        title="medfuse device catalog (key: what `medfuse build --device KEY` takes; "
        "* = contains unconfirmed facts)",
    )
    jp_rows = []
    for r in catalog.jetpack:
        trt = r.tensorrt + (f" (+{r.tensorrt_optional} SBSA)" if r.tensorrt_optional else "")
        jp_rows.append(
            [
                r.jetpack + ("*" if r.uncertain else ""),
                r.l4t or "?",
                r.ubuntu,
                r.python,
                r.cuda,
                trt,
                ", ".join(r.modules),
            ]
        )
    out += "\n" + render_table(
        (
            Column("JetPack", key=True),
            Column("L4T"),
            Column("Ubuntu"),
            Column("Python", "Py", "Python"),
            Column("CUDA"),
            Column("TensorRT", "TRT", "TensorRT", wrap=True),
            Column("modules", wrap=True),
        ),
        jp_rows,
        title="JetPack releases (* = contains unconfirmed facts)",
    )
    det_rows = []
    for key, value in detected.to_dict().items():
        if value in (None, [], ()):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
        elif isinstance(value, list):
            value = "; ".join(str(v) for v in value)
        det_rows.append([key, str(value)])
    out += "\n" + render_table(
        (Column("field", key=True), Column("value", wrap=True)), det_rows, title="detected here"
    )
    sys.stdout.write(out)
    return 0
