"""``medfuse export-triton``: write a Triton Inference Server model repository for a bundle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medfuse.cli.options import add_trust_options

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``medfuse export-triton``'s arguments to ``parser``."""
    add_trust_options(parser)
    parser.add_argument("bundle", help="model bundle (folder or zip)")
    parser.add_argument("--out", type=Path, required=True, help="repository folder (new or empty)")
    parser.add_argument(
        "--variant", default="auto", help="precision variant (default: auto — see the docs)"
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "onnxruntime", "tensorrt"),
        help="auto: TensorRT plans when the bundle has engines for the variant, else ONNX Runtime",
    )
    parser.add_argument("--tensorrt-version", default=None, help="only engines of this TensorRT")
    parser.add_argument("--max-batch", type=int, default=8, metavar="N", help="max_batch_size (8)")
    parser.add_argument("--instances", type=int, default=1, metavar="N", help="instances (1)")
    parser.add_argument(
        "--preferred-batch", default="", metavar="4,8", help="dynamic batcher's preferred sizes"
    )
    parser.add_argument(
        "--max-queue-delay-us", type=int, default=100, metavar="N", help="batcher delay (100 µs)"
    )
    parser.add_argument(
        "--execution-env",
        default=None,
        metavar="PATH",
        help=(
            "Python environment (conda-pack archive or unpacked folder, as the server sees it) "
            "with medfuse installed, for the preprocessing model (EXECUTION_ENV_PATH)"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")


def run(args: argparse.Namespace) -> int:
    """Write the repository; prints its layout (or JSON with ``--json``)."""
    from medfuse._paths import preflight, writing
    from medfuse.serving.server import parse_batch_sizes
    from medfuse.serving.triton_repo import TritonExportOptions, export_triton_repository

    options = TritonExportOptions(
        variant=args.variant,
        backend=args.backend,
        max_batch=args.max_batch,
        instances=args.instances,
        preferred_batch=parse_batch_sizes(args.preferred_batch),
        max_queue_delay_us=args.max_queue_delay_us,
        tensorrt_version=args.tensorrt_version,
        execution_env=args.execution_env,
    )
    preflight(folders={"--out": args.out})
    with writing(args.out, "write the repository", "--out"):
        repo = export_triton_repository(args.bundle, args.out, options)
    if args.json:
        print(json.dumps(repo.to_dict(), indent=2))
    else:
        print(
            f"wrote {repo.path} ({repo.backend}, variant {repo.variant}, max batch {repo.max_batch})"
        )
        print(f"  models: {repo.model}, {repo.preprocess}, {repo.ensemble} (send studies here)")
        print(f"  start:  tritonserver --model-repository {repo.path}  (see {repo.path}/README.md)")
    return 0
