"""``medfuse keygen PREFIX``: create an Ed25519 key pair for signing bundles.

Writes ``PREFIX.key`` (private, mode 0600; encrypted when ``$MEDFUSE_KEY_PASSPHRASE`` is set)
and ``PREFIX.pub`` (the public key devices trust), and prints the key id. Existing files are
never overwritten.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``keygen``'s arguments."""
    parser.add_argument(
        "prefix", type=Path, metavar="PREFIX", help="path without suffix, e.g. keys/acme-release"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    """Generate the key pair and say where it went."""
    from medfuse.bundle.signing import PASSPHRASE_ENV, generate_key

    files = generate_key(args.prefix)
    if args.json:
        doc = {"key_id": files.key_id, "private": str(files.private), "public": str(files.public)}
        print(json.dumps(doc, indent=2))
        return 0
    print(f"key id   {files.key_id}")
    print(f"private  {files.private}  (keep it offline; encrypted when ${PASSPHRASE_ENV} is set)")
    print(f"public   {files.public}  (give it to devices: --trusted-key, or their trust config)")
    return 0
