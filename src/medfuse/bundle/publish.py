"""Publish a bundle: verify it, sign its manifest, write ``manifest.json.sig`` atomically."""

from __future__ import annotations

import logging
from pathlib import Path

from medfuse.bundle.bundle import open_bundle
from medfuse.bundle.limits import MANIFEST_LIMITS, SMALL_DOCUMENT_LIMITS, read_bounded
from medfuse.bundle.manifest import MANIFEST_NAME
from medfuse.bundle.signing import (
    SIGNATURE_NAME,
    PublicKey,
    SignatureRecord,
    SigningKey,
    parse_signatures,
    sign_manifest,
    signatures_document,
)
from medfuse.bundle.trust import NO_POLICY
from medfuse.bundle.write import write_text_atomic
from medfuse.errors import (
    BundleError,
    IntegrityError,
    ManifestError,
    UntrustedBundleError,
    UsageError,
)

__all__ = ["sign_bundle"]

logger = logging.getLogger(__name__)


def sign_bundle(
    bundle: str | Path, key: SigningKey, *, signed_at: str | None = None
) -> SignatureRecord:
    """Sign a bundle directory's manifest with ``key``, writing ``manifest.json.sig``.

    The bundle is verified first (every artifact's sha256, external data listed): a damaged
    bundle is never signed. Signatures by other keys over the same manifest are kept; one by
    the same key, or over an older manifest, is replaced.

    Parameters
    ----------
    bundle:
        The bundle directory (or its ``manifest.json``). A zip cannot be signed in place: unzip
        it, sign the directory, zip it again.
    key:
        The publisher's key (:func:`~medfuse.bundle.signing.load_signing_key`).
    signed_at:
        UTC time ``YYYY-MM-DDTHH:MM:SSZ`` to record (default: now).

    Returns
    -------
    SignatureRecord
        The new signature.

    Raises
    ------
    UsageError
        ``bundle`` is a zip.
    IntegrityError
        The bundle fails verification.
    BundleError
        The manifest changed while signing, or the signature cannot be written.
    """
    path = Path(bundle).expanduser()
    if path.is_file() and path.name == MANIFEST_NAME:
        path = path.parent
    if path.is_file():
        raise UsageError(
            f"{path.name} is a file; sign the bundle directory, then zip it (the zip then "
            f"carries {SIGNATURE_NAME})"
        )
    opened = open_bundle(path, trust=NO_POLICY)
    report = opened.verify()
    problems = [p for p in report.problems if p.kind != "signature"]
    if problems:
        details = "; ".join(p.message for p in problems)
        raise IntegrityError(
            f"bundle {opened.label} failed verification, so it is not signed: {details}"
        )
    text = read_bounded(
        path / MANIFEST_NAME,
        MANIFEST_LIMITS.max_bytes,
        what=f"bundle {opened.label}: {MANIFEST_NAME}",
        error=ManifestError,
    )
    record = sign_manifest(text, key, signed_at=signed_at)
    if record.manifest_sha256 != opened.digest:
        raise BundleError(f"bundle {opened.label}: the manifest changed while signing; try again")
    records = [record, *_other_signatures(path, opened.label, record)]
    write_text_atomic(path / SIGNATURE_NAME, signatures_document(records))
    logger.info("signed bundle %s with key %s", opened.label, record.key_id)
    return record


def _other_signatures(root: Path, label: str, new: SignatureRecord) -> list[SignatureRecord]:
    """The existing signatures by other keys over the same manifest."""
    sig = root / SIGNATURE_NAME
    if not sig.is_file():
        return []
    where = f"bundle {label}: {SIGNATURE_NAME}"
    try:
        data = read_bounded(
            sig, SMALL_DOCUMENT_LIMITS.max_bytes, what=where, error=UntrustedBundleError
        )
        old = parse_signatures(data, source=where)
    except UntrustedBundleError:
        return []  # a broken signature file is replaced
    return [
        r
        for r in old
        if r.key_id != new.key_id
        and r.manifest_sha256 == new.manifest_sha256
        and PublicKey(r.public_key).verifies(r.signature, r.statement())
    ]
