"""Option groups shared by several verbs, each with its one parser.

The *bundle trust* group (``--trusted-key``, ``--expect-sha256``) is added by every verb that
opens a bundle (``add_trust_options(parser)`` in its ``configure``). ``medfuse``'s entry point
turns the parsed options into a :class:`~medfuse.bundle.trust.TrustPolicy`
(:func:`trust_policy_from_args`) and installs it for the whole command, so every bundle the verb
opens — through ``Session``, ``validate_bundle``, the benchmark runner, … — is checked against it
without the verb passing it along.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from medfuse.errors import UsageError

if TYPE_CHECKING:
    from medfuse.bundle.trust import TrustPolicy

__all__ = ["add_trust_options", "trust_policy_from_args"]

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
