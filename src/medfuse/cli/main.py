"""Entry point of the ``medfuse`` command: verb registry, logging, error → exit-code mapping.

Exit codes: 0 success, 1 a medfuse error (clean message; traceback only with ``-v``),
2 usage error (bad arguments, or a verb that is not built yet).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from medfuse import __version__
from medfuse.errors import MedfuseError, UsageError

__all__ = ["VERBS", "main"]


@dataclass(frozen=True)
class Verb:
    """A CLI verb: its module (``configure(parser)`` + ``run(args) -> int``) or the issue building it."""

    name: str
    help: str
    module: str | None = None
    pending: str = ""


VERBS: tuple[Verb, ...] = (
    Verb("synth", "write synthetic multimodal studies as DICOM", "medfuse.cli.synth"),
    Verb("train", "train a reference fusion model on synthetic studies", "medfuse.cli.train"),
    Verb("export", "export a PyTorch model to an ONNX bundle", "medfuse.cli.export"),
    Verb("inspect", "show a bundle's manifest", module="medfuse.cli.inspect"),
    Verb("keygen", "create an Ed25519 key pair for signing bundles", "medfuse.cli.keygen"),
    Verb("sign", "sign a bundle's manifest with a private key", "medfuse.cli.sign"),
    Verb("quantize", "make INT8 / FP16 variants behind an accuracy gate", "medfuse.cli.quantize"),
    Verb("build", "build a TensorRT engine for this device", "medfuse.cli.build"),
    Verb("scan", "dry run: which series each study would feed, and why not", "medfuse.cli.scan"),
    Verb("run", "screen a folder of DICOM studies offline", "medfuse.cli.run"),
    Verb("demo", "run the shipped model on synthetic studies", "medfuse.cli.demo"),
    Verb("bench", "measure latency per device", module="medfuse.cli.bench"),
    Verb("validate", "check a bundle's golden vectors on this machine", "medfuse.cli.validate"),
    Verb("devices", "list known devices and detect this one", "medfuse.cli.devices"),
    Verb("export-triton", "write a Triton Inference Server model repository", "medfuse.cli.export_triton"),
    Verb("serve", "serve a bundle with Triton (PyTriton) on loopback", "medfuse.cli.serve"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medfuse",
        description="Multimodal medical-imaging fusion models, from PyTorch to validated engines.",
    )
    parser.add_argument("--version", action="version", version=f"medfuse {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging; tracebacks on errors"
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        p = sub.add_parser(verb.name, help=verb.help, description=verb.help)
        p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if verb.module is not None and _verb_module_exists(verb.module):
            importlib.import_module(verb.module).configure(p)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _verb_module_exists(module: str) -> bool:
    """Whether a verb's module is present (a partial install may lack one)."""
    return importlib.util.find_spec(module) is not None


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("medfuse")
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``medfuse`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    verbosity = int(getattr(args, "verbose", 0) or 0)
    _setup_logging(verbosity)
    if args.verb is None:
        parser.print_help()
        return 2
    from medfuse.bundle.trust import use_trust_policy
    from medfuse.cli.options import trust_policy_from_args

    verb = next(v for v in VERBS if v.name == args.verb)
    if verb.module is None or not _verb_module_exists(verb.module):
        print(
            f"medfuse {verb.name}: not built yet (it arrives with the {verb.pending} work); "
            "see README.md for what works today",
            file=sys.stderr,
        )
        return 2
    try:
        module = importlib.import_module(verb.module)
        with use_trust_policy(trust_policy_from_args(args)):
            return int(module.run(args))
    except UsageError as exc:
        if verbosity:
            logging.getLogger("medfuse.cli").exception("usage error")
        print(f"medfuse {verb.name}: {exc}", file=sys.stderr)
        return 2
    except MedfuseError as exc:
        if verbosity:
            logging.getLogger("medfuse.cli").exception("failed")
        print(f"medfuse {verb.name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"medfuse {verb.name}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # the last net: a path the verb's own checks (medfuse._paths) did not name; the path is
        # left out because it may be a file of an input folder
        if verbosity:
            logging.getLogger("medfuse.cli").exception("operating-system error")
        code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        print(
            f"medfuse {verb.name}: error: the operating system refused a file operation "
            f"({code}: {exc.strerror or 'no detail'}); run with -v to see which",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
