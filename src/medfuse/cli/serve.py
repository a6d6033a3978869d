"""``medfuse serve``: serve a bundle with a real Triton server (PyTriton) on loopback.

Prints one JSON line (``{"ready": true, ...}``: endpoints, model names) on stdout once the
models are loaded, then serves until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medfuse.cli.options import add_session_options, add_trust_options, positive_int

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``medfuse serve``'s arguments to ``parser``."""
    add_trust_options(parser)
    parser.add_argument(
        "bundle", nargs="?", default=None, help="model bundle (default: the shipped reference)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)"
    )
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP port (8000)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (8001)")
    parser.add_argument("--metrics-port", type=int, default=8002, help="Prometheus port (8002)")
    parser.add_argument(
        "--max-batch", type=positive_int, default=8, metavar="N", help="max batch (8)"
    )
    parser.add_argument(
        "--instances", type=positive_int, default=1, metavar="N", help="instances (1)"
    )
    parser.add_argument("--preferred-batch", default="", metavar="4,8", help="preferred sizes")
    parser.add_argument(
        "--max-queue-delay-us", type=int, default=2000, metavar="N", help="batcher delay (2000)"
    )
    add_session_options(parser, threads_help="CPU threads per instance")
    parser.add_argument("--workers", type=int, default=2, help="preprocessing threads (2)")
    parser.add_argument(
        "--key-secret-file",
        type=Path,
        default=None,
        metavar="F",
        help="secret for the pseudonymous study keys (as for medfuse run)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 on a clean stop."""
    from medfuse.serving.server import ServeOptions, parse_batch_sizes, serve_bundle

    options = ServeOptions(
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        max_batch=args.max_batch,
        instances=args.instances,
        preferred_batch=parse_batch_sizes(args.preferred_batch),
        max_queue_delay_us=args.max_queue_delay_us,
        backend=args.backend,
        precision=args.precision,
        device=args.device,
        threads=args.threads,
        workers=args.workers,
        key_secret_file=args.key_secret_file,
    )

    def ready(info: dict[str, Any]) -> None:
        print(json.dumps(info), flush=True)

    serve_bundle(args.bundle, options, on_ready=ready)
    print("medfuse serve: stopped", file=sys.stderr)
    return 0
