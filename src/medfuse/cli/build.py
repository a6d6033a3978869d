"""``medfuse build``: build a TensorRT engine for this device and store it in the bundle."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medfuse.cli.options import add_trust_options

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``build``'s options to its sub-parser."""
    add_trust_options(parser)
    parser.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle directory")
    parser.add_argument("--variant", default="fp16", metavar="PRECISION",
                        help="ONNX variant to build from: int8, fp16, fp32 (default fp16)")
    parser.add_argument("--device", default="auto", metavar="KEY",
                        help="catalog key whose build defaults to use (default: auto-detect; "
                             "see `medfuse devices`)")
    parser.add_argument("--batch", default=None, metavar="SIZES",
                        help="batch sizes, e.g. 1,4,8 (default: the device's)")
    parser.add_argument("--dla", type=int, default=None, metavar="CORE",
                        help="build for this DLA core (Jetson Xavier / Orin NX / AGX Orin)")
    parser.add_argument("--workspace", type=int, default=None, metavar="MiB",
                        help="builder workspace limit in MiB (default: the device's)")
    parser.add_argument("--opt-level", type=int, default=None, metavar="N",
                        help="builder optimisation level 0-5 (default: the device's, usually 3)")
    parser.add_argument("--version-compatible", action="store_true",
                        help="build a version-compatible plan (runs on later TensorRT releases)")
    parser.add_argument("--exclude-lean-runtime", action="store_true",
                        help="with --version-compatible: leave the lean runtime out of the plan")
    parser.add_argument("--json", action="store_true", help="print the engine record as JSON")


def run(args: argparse.Namespace) -> int:
    """Check the bundle and this machine, build, store, and report the engine."""
    from dataclasses import replace

    from medfuse.devices.catalog import load_catalog
    from medfuse.devices.detect import detect_device
    from medfuse.devices.engines import build_engine, check_build_environment
    from medfuse.devices.plan import BuildRequest, parse_batch_sizes
    from medfuse.errors import BundleError, UsageError

    if not (args.bundle / "manifest.json").is_file() and not args.bundle.is_file():
        raise BundleError(f"{args.bundle.name or args.bundle}: not a bundle (no manifest.json); "
                          "create one with `medfuse export`")
    detected = detect_device()
    check_build_environment(detected)
    if args.device != "auto":
        entry = load_catalog().entry(args.device)
        if detected.compute_capability not in (None, entry.compute_capability):
            raise UsageError(
                f"--device {args.device}: that is a compute capability {entry.compute_capability} "
                f"device, but this GPU ({detected.name}) is {detected.compute_capability}; "
                "engines are built on the device they run on"
            )
        detected = replace(detected, catalog_key=entry.key)
    request = BuildRequest(
        variant=args.variant,
        batch_sizes=parse_batch_sizes(args.batch) if args.batch else None,
        dla_core=args.dla,
        workspace_mib=args.workspace,
        optimization_level=args.opt_level,
        version_compatible=args.version_compatible,
        exclude_lean_runtime=args.exclude_lean_runtime,
    )

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=not err.is_terminal) as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = int(bar.add_task(phase[:40], total=max(total, 1)))
            bar.update(tasks[phase], completed=done, total=max(total, 1))  # type: ignore[arg-type]

        built = build_engine(args.bundle, request, detected=detected, progress=progress)

    record = built.record
    if args.json:
        json.dump({"key": record.key, **record.to_dict()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    out = Console()
    out.print(f"built [bold]{record.key}[/bold] in {built.result.seconds:.1f} s "
              f"({len(built.result.plan) / 1e6:.1f} MB)")
    out.print(f"  variant {record.variant}, TensorRT {record.tensorrt_version}, "
              f"{record.gpu_name} (compute {record.compute_capability})"
              + (f", DLA core {record.dla_core}" if record.dla_core is not None else ""))
    out.print(f"  flags: network {list(built.plan.network_flags)}, "
              f"builder {list(built.plan.builder_flags)}; timing cache "
              f"{'reused' if built.result.timing_cache_reused else 'new'}")
    for note in built.plan.notes:
        out.print(f"  note: {note}")
    return 0
