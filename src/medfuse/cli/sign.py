"""``medfuse sign BUNDLE --key KEY``: sign a bundle's manifest (writes ``manifest.json.sig``).

The bundle is verified first; a damaged bundle is not signed. The printed sha256 is the bundle's
digest, what ``--expect-sha256`` pins.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``sign``'s arguments."""
    parser.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle directory")
    parser.add_argument(
        "--key",
        type=Path,
        required=True,
        metavar="KEY",
        help="private key file from `medfuse keygen` (passphrase from $MEDFUSE_KEY_PASSPHRASE)",
    )
    parser.add_argument("--json", action="store_true", help="print the signature as JSON")


def run(args: argparse.Namespace) -> int:
    """Sign the bundle and print the key id and the bundle's sha256."""
    from medfuse.bundle.publish import sign_bundle
    from medfuse.bundle.signing import SIGNATURE_NAME, load_signing_key

    record = sign_bundle(args.bundle, load_signing_key(args.key))
    if args.json:
        print(json.dumps(record.to_dict(), indent=2))
        return 0
    print(f"signed {args.bundle.name} with key {record.key_id} ({SIGNATURE_NAME})")
    print(f"sha256 {record.manifest_sha256}")
    return 0
