"""Option groups shared by several verbs, each with its one parser.

The *model session* group (``--backend``, ``--precision`` / ``--variant``, ``--device``,
``--threads``, ``--batch``) is declared once, in :func:`add_session_options`, and used by
``run``, ``serve``, ``validate`` and ``bench``. Verbs that run one session (``run``,
``serve``) take one backend and one precision (``auto`` by default); verbs that go over
several (``bench``, ``validate``) take lists — comma-separated, the option repeatable — read
back with :func:`names`. Each value type has one parser here: :func:`positive_int`,
:func:`batch_list` (over :func:`medfuse.runtime.batch_sizes.parse_batch_sizes`),
:func:`name_list`, :func:`device_name`.

The *bundle trust* group (``--trusted-key``, ``--expect-sha256``) is added by every verb that
opens a bundle (``add_trust_options(parser)`` in its ``configure``). ``medfuse``'s entry point
turns the parsed options into a :class:`~medfuse.bundle.trust.TrustPolicy`
(:func:`trust_policy_from_args`) and installs it for the whole command, so every bundle the verb
opens — through ``Session``, ``validate_bundle``, the benchmark runner, … — is checked against it
without the verb passing it along.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from medfuse.errors import UsageError

if TYPE_CHECKING:
    from medfuse.bundle.trust import TrustPolicy

__all__ = [
    "BACKEND_NAMES",
    "add_session_options",
    "add_trust_options",
    "batch_list",
    "device_name",
    "name_list",
    "names",
    "positive_int",
    "trust_policy_from_args",
]

# medfuse.runtime.backends.select.BACKENDS, spelled out so that building the parser does not
# import the runtime (tests/cli/test_options.py checks that they agree).
BACKEND_NAMES = ("onnxruntime", "tensorrt")
_DEVICES = "auto, cpu, cuda or cuda:N"


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def batch_list(text: str) -> tuple[int, ...]:
    """An argparse type: ``1,4,8`` (the one batch-size parser)."""
    from medfuse.runtime.batch_sizes import parse_batch_sizes

    try:
        return parse_batch_sizes(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def name_list(text: str) -> tuple[str, ...]:
    """An argparse type: ``a,b`` → ``("a", "b")`` (blanks dropped)."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


def device_name(text: str) -> str:
    """An argparse type: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (``gpu`` = ``cuda``)."""
    d = text.strip().lower()
    if d in ("auto", "cpu", "cuda", "gpu") or (d.startswith("cuda:") and d[5:].isdigit()):
        return d
    raise argparse.ArgumentTypeError(f"{text!r} is not one of {_DEVICES}")


def names(values: Sequence[Sequence[str]] | None) -> tuple[str, ...]:
    """The names of a repeatable list option, flattened, in order, without repeats."""
    return tuple(dict.fromkeys(n for group in values or () for n in group))


def add_session_options(
    parser: argparse.ArgumentParser,
    *,
    many: bool = False,
    batch: int | None = None,
    threads_help: str = "CPU threads for inference (default: the backend's)",
) -> None:
    """Add the *model session* option group.

    Parameters
    ----------
    many:
        ``False``: one ``--backend`` (``auto``, default) and one ``--precision`` (alias
        ``--variant``) in ``args.backend`` / ``args.precision``. ``True``: lists in
        ``args.backends`` / ``args.variants`` (read them with :func:`names`; empty = all).
    batch:
        Add ``--batch``: one size with this default (``many=False``), or a list defaulting to
        ``(batch,)`` (``many=True``). ``None``: no ``--batch``.
    """
    group = parser.add_argument_group(
        "model session", "Which backend, variant and device run the model, and how."
    )
    if many:
        group.add_argument(
            "--backend",
            dest="backends",
            action="append",
            type=name_list,
            default=None,
            metavar="NAME[,NAME]",
            help=f"{' or '.join(BACKEND_NAMES)}; comma list or repeated "
            "(default: every backend available here)",
        )
        group.add_argument(
            "--variant",
            "--precision",
            dest="variants",
            action="append",
            type=name_list,
            default=None,
            metavar="NAME[,NAME]",
            help="variants, e.g. fp32,int8; comma list or repeated (default: all in the bundle)",
        )
    else:
        group.add_argument(
            "--backend",
            default="auto",
            choices=("auto", *BACKEND_NAMES),
            help="inference backend (default auto: TensorRT with a matching engine, else "
            "ONNX Runtime)",
        )
        group.add_argument(
            "--precision",
            "--variant",
            dest="precision",
            default="auto",
            metavar="NAME",
            help="model variant: auto (default), fp32, fp16, int8, int8-cpu",
        )
    group.add_argument(
        "--device", type=device_name, default="auto", help=f"{_DEVICES} (default auto)"
    )
    group.add_argument("--threads", type=positive_int, default=None, metavar="N", help=threads_help)
    if batch is not None and many:
        group.add_argument(
            "--batch",
            type=batch_list,
            default=(batch,),
            metavar="N[,N]",
            help=f"batch sizes, comma list (default {batch})",
        )
    elif batch is not None:
        group.add_argument(
            "--batch",
            type=positive_int,
            default=batch,
            metavar="N",
            help=f"inference batch size (default {batch})",
        )


_TRUST_DEST = "_trust_options"


def _sha256(text: str) -> str:
    from medfuse.bundle.trust import check_sha256_text

    try:
        return check_sha256_text(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_trust_options(parser: argparse.ArgumentParser) -> None:
    """Add the *bundle trust* option group to a verb's parser."""
    group = parser.add_argument_group(
        "bundle trust",
        "Refuse bundles that are not signed by a trusted key or not the pinned one. Without "
        "these options, $MEDFUSE_TRUSTED_KEYS or the trust config ($MEDFUSE_TRUST_CONFIG, "
        "default /etc/medfuse/trust.json) apply when set.",
    )
    group.add_argument(
        "--trusted-key",
        dest="trusted_keys",
        action="append",
        type=Path,
        default=None,
        metavar="PUBKEY",
        help="public key file (.pub from `medfuse keygen`) whose signature is required "
        "(repeatable: any one of them)",
    )
    group.add_argument(
        "--expect-sha256",
        type=_sha256,
        default=None,
        metavar="HEX",
        help="refuse any bundle but the one with this sha256 (shown by `medfuse inspect`)",
    )
    parser.set_defaults(**{_TRUST_DEST: True})


def trust_policy_from_args(args: argparse.Namespace) -> TrustPolicy | None:
    """The policy the trust options (with the environment and config file) give, or ``None``
    for a verb without them.

    Raises
    ------
    UsageError
        A key file or the config cannot be read, or a locked config forbids ``--trusted-key``.
    """
    if not getattr(args, _TRUST_DEST, False):
        return None
    from medfuse.bundle.trust import resolve_policy

    return resolve_policy(args.trusted_keys, expect_sha256=args.expect_sha256)
