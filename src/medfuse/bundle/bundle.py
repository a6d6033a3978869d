"""Open a bundle (a ``NAME.medfuse/`` directory or a zip of one) and use its files safely.

:func:`open_bundle` is the one opener every verb and :class:`~medfuse.runtime.session.Session`
go through. It reads ``manifest.json`` (bounded) and ``manifest.json.sig``, lets the trust policy
decide on those bytes alone (:mod:`medfuse.bundle.trust`), and only then parses the manifest and,
for a zip, extracts it (:mod:`medfuse.bundle.archive`).

Every file handed out by :meth:`Bundle.file` / :meth:`Bundle.variant_file` /
:meth:`Bundle.engine_file` has had its sha256 checked against the manifest — for an ONNX variant
also every external-data file it loads — so a damaged or swapped artifact is an
:class:`~medfuse.errors.IntegrityError` naming the file, never a crash deep inside ONNX Runtime
or TensorRT, and never a quietly different model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from medfuse.bundle.external_data import external_data_locations, resolve_location
from medfuse.bundle.integrity import DAMAGED_HINT, check_sha256
from medfuse.bundle.limits import (
    MANIFEST_LIMITS,
    SMALL_DOCUMENT_LIMITS,
    load_json,
    read_bounded,
    shown,
)
from medfuse.bundle.manifest import MANIFEST_NAME, Manifest, check_relative_path
from medfuse.bundle.signing import SIGNATURE_NAME
from medfuse.bundle.spec import ModelSpec
from medfuse.bundle.trust import SignatureState, TrustPolicy, active_policy, check_trust
from medfuse.errors import BundleError, IntegrityError, ManifestError

__all__ = ["Bundle", "VerifyProblem", "VerifyReport", "open_bundle"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyProblem:
    """One thing wrong with a bundle: a ``missing`` or ``mismatch``-ed artifact, a variant /
    engine / external-data file that is ``unlisted`` in the manifest's artifacts, or a
    ``signature`` that does not verify."""

    file: str
    kind: Literal["missing", "mismatch", "unlisted", "signature"]
    message: str


@dataclass(frozen=True)
class VerifyReport:
    """Result of :meth:`Bundle.verify`: the files that passed and the problems found."""

    ok_files: tuple[str, ...]
    problems: tuple[VerifyProblem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Whether every artifact is present and matches the manifest."""
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise :class:`IntegrityError` listing every problem, if there is any."""
        if self.problems:
            lines = "; ".join(p.message for p in self.problems)
            raise IntegrityError(f"{len(self.problems)} problem(s) found: {lines}")


class Bundle:
    """An opened bundle: its directory, parsed manifest, and verified access to its files.

    Use :func:`open_bundle` to get one. A bundle opened from a zip lives in a private cache
    directory and is read-only (:attr:`read_only`).
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        *,
        source: Path | None = None,
        signature: SignatureState | None = None,
        archive_sha256: str | None = None,
    ) -> None:
        self._path = path
        self._manifest = manifest
        self._source = source
        self._signature = signature
        self._archive_sha256 = archive_sha256

    @property
    def path(self) -> Path:
        """The bundle directory (for a zip: its extracted copy in the cache)."""
        return self._path

    @property
    def manifest(self) -> Manifest:
        """The parsed manifest."""
        return self._manifest

    @property
    def spec(self) -> ModelSpec:
        """The model's inputs, outputs and preprocessing recipes."""
        return self._manifest.model

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precision variants this bundle holds, in manifest order."""
        return tuple(self._manifest.variants)

    @property
    def source(self) -> Path:
        """What was opened: the directory, or the zip file it was extracted from."""
        return self._source or self._path

    @property
    def read_only(self) -> bool:
        """Whether this bundle must not be modified (it was opened from a zip)."""
        return self._source is not None

    @property
    def signature(self) -> SignatureState | None:
        """The state of ``manifest.json.sig`` as found when the bundle was opened."""
        return self._signature

    @property
    def digest(self) -> str | None:
        """The bundle's sha256: that of its ``manifest.json``, which lists every artifact's
        sha256 (what ``--expect-sha256`` pins and a signature covers)."""
        return self._signature.digest if self._signature is not None else None

    @property
    def archive_sha256(self) -> str | None:
        """For a bundle opened from a zip: the zip file's sha256."""
        return self._archive_sha256

    @property
    def label(self) -> str:
        """A short name for messages: the bundle's (or zip's) file name, not its full path."""
        return self.source.name

    def __repr__(self) -> str:
        m = self._manifest
        return (
            f"Bundle({self.label!r}, model={m.model.name!r} {m.model.version!r}, "
            f"variants={list(m.variants)}, engines={len(m.engines)})"
        )

    def _resolve(self, rel: str) -> Path:
        check_relative_path(rel, "file")
        path = self._path / rel
        root = self._path.resolve()
        if not path.resolve().is_relative_to(root):
            raise IntegrityError(
                f"bundle {self.label}: {rel} points outside the bundle (a link?); {DAMAGED_HINT}"
            )
        return path

    def file(self, rel: str, *, verify: bool = True) -> Path:
        """The path of the bundle file ``rel``, its sha256 checked first.

        Parameters
        ----------
        rel:
            Path relative to the bundle, e.g. ``"golden.npz"`` or ``"reports/parity.json"``.
        verify:
            Check the sha256 recorded in the manifest's artifacts (once per process per
            unchanged file). With ``False`` the file need not be listed.

        Raises
        ------
        IntegrityError
            The file is missing, or its sha256 differs from the manifest's.
        BundleError
            ``rel`` is not an artifact of this bundle (with ``verify=True``), or is missing
            (with ``verify=False``).
        """
        try:
            path = self._resolve(rel)
        except ManifestError as exc:
            raise BundleError(str(exc)) from exc
        if not verify:
            if not path.is_file():
                raise BundleError(f"bundle {self.label}: {rel} does not exist")
            return path
        expected = self._manifest.artifacts.get(rel)
        if expected is None:
            listed = ", ".join(sorted(self._manifest.artifacts)) or "none"
            raise BundleError(
                f"bundle {self.label}: {rel} is not an artifact of this bundle (artifacts: {listed})"
            )
        check_sha256(path, expected, name=rel, where=f"bundle {self.label}")
        return path

    def variant_file(self, precision: str) -> Path:
        """The verified ONNX file of the ``precision`` variant (e.g. ``"fp32"``, ``"int8"``).

        Raises
        ------
        BundleError
            The bundle has no such variant; the message lists the ones it has.
        IntegrityError
            The file is missing or damaged.
        """
        variant = self._manifest.variants.get(precision)
        if variant is None:
            have = ", ".join(self.precisions) or "none"
            raise BundleError(
                f"bundle {self.label} has no {precision!r} variant; it has: {have} "
                "(add one with `medfuse quantize`)"
            )
        path = self._resolve(variant.file)
        check_sha256(path, variant.sha256, name=variant.file, where=f"bundle {self.label}")
        for rel in self._external_files(variant.file, path):
            expected = self._manifest.artifacts.get(rel)
            if expected is None:
                raise IntegrityError(
                    f"bundle {self.label}: {variant.file} loads external data {rel}, which the "
                    "manifest does not list; re-export the bundle so that its manifest lists "
                    "every file the model loads"
                )
            check_sha256(self._resolve(rel), expected, name=rel, where=f"bundle {self.label}")
        return path

    def _external_files(self, model_file: str, path: Path) -> tuple[str, ...]:
        """The bundle-relative external-data files of the (verified) ONNX file ``model_file``."""
        try:
            locations = external_data_locations(path, name=f"bundle {self.label}: {model_file}")
        except BundleError as exc:
            raise IntegrityError(str(exc)) from exc
        files = []
        for location in locations:
            rel = resolve_location(model_file, location)
            if rel is None or rel == MANIFEST_NAME:
                raise IntegrityError(
                    f"bundle {self.label}: {model_file} loads external data from "
                    f"{shown(location)}, outside the bundle; {DAMAGED_HINT}"
                )
            self._resolve(rel)  # refuses a link out of the bundle
            files.append(rel)
        return tuple(files)

    def engine_file(self, key: str) -> Path:
        """The verified TensorRT plan cached under engine ``key``.

        Raises
        ------
        BundleError
            No engine has that key.
        IntegrityError
            The plan is missing or damaged.
        """
        record = self._manifest.engines.get(key)
        if record is None:
            have = ", ".join(self._manifest.engines) or "none"
            raise BundleError(f"bundle {self.label} has no engine {key!r}; it has: {have}")
        path = self._resolve(record.file)
        check_sha256(path, record.sha256, name=record.file, where=f"bundle {self.label}")
        return path

    def verify(self) -> VerifyReport:
        """Check every artifact's sha256, that every variant / engine / external-data file is
        listed, and that a signature present verifies.

        Returns
        -------
        VerifyReport
            ``ok_files`` and ``problems``; never raises for damage (see
            :meth:`VerifyReport.raise_for_problems`).
        """
        m = self._manifest
        ok: list[str] = []
        problems: list[VerifyProblem] = []
        for rel, expected in sorted(m.artifacts.items()):
            try:
                check_sha256(self._resolve(rel), expected, name=rel)
            except IntegrityError as exc:
                kind: Literal["missing", "mismatch"] = (
                    "missing" if not (self._path / rel).is_file() else "mismatch"
                )
                problems.append(VerifyProblem(rel, kind, str(exc)))
            else:
                ok.append(rel)
        referenced: dict[str, str] = {
            **{v.file: f"variant {p!r}" for p, v in m.variants.items()},
            **{e.file: f"engine {k!r}" for k, e in m.engines.items()},
        }
        for p, v in m.variants.items():
            if v.file in ok:
                try:
                    externals = self._external_files(v.file, self._path / v.file)
                except IntegrityError as exc:
                    problems.append(VerifyProblem(v.file, "mismatch", str(exc)))
                    continue
                referenced.update({rel: f"external data of variant {p!r}" for rel in externals})
        for rel, what in referenced.items():
            if rel not in m.artifacts:
                problems.append(
                    VerifyProblem(
                        rel, "unlisted", f"{rel} ({what}) is not listed in the manifest's artifacts"
                    )
                )
        if self._signature is not None and self._signature.status == "invalid":
            problems.append(VerifyProblem(SIGNATURE_NAME, "signature", self._signature.detail))
        logger.info("verified bundle: %d file(s) ok, %d problem(s)", len(ok), len(problems))
        return VerifyReport(tuple(ok), tuple(problems))


def open_bundle(path: str | Path, *, trust: TrustPolicy | None = None) -> Bundle:
    """Open a bundle directory (``NAME.medfuse/``), its ``manifest.json``, or a zip of it.

    The trust policy decides on ``manifest.json`` and ``manifest.json.sig`` alone, before the
    manifest is parsed and before anything else of the bundle is read. A zip is checked entry
    by entry first (:class:`~medfuse.bundle.archive.ZipBundle`) and extracted into a
    content-addressed cache that is re-verified on every open.

    Parameters
    ----------
    path:
        The bundle directory, its manifest file, or a ``.zip``.
    trust:
        The policy to satisfy; default: :func:`~medfuse.bundle.trust.active_policy` (the one the
        CLI installed, else ``$MEDFUSE_TRUSTED_KEYS``, else the trust config file, else none).
        :data:`~medfuse.bundle.trust.NO_POLICY` opens any bundle.

    Returns
    -------
    Bundle
        The opened bundle; artifacts are verified when used, not here.

    Raises
    ------
    UntrustedBundleError
        The policy refuses the bundle (unsigned, wrong key, expired key, signature over other
        bytes, digest other than the pinned one).
    BundleError
        The path does not exist or is not a bundle; a zip over a limit or with unsafe entries.
    ManifestError
        The manifest is missing, too large or deep, not JSON, or has an invalid field (the
        message names it).
    IncompatibleBundleError
        The manifest's schema is newer than this medfuse reads.
    """
    policy = active_policy() if trust is None else trust
    p = Path(path).expanduser()
    if p.is_file() and p.name == MANIFEST_NAME:
        p = p.parent
    elif p.is_file():
        return _open_zip(p, policy)
    elif not p.exists():
        raise BundleError(
            f"bundle {str(p)!r} not found; give a NAME.medfuse directory or a zip of one"
        )
    label = p.name
    manifest_path = p / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ManifestError(
            f"bundle {label}: {MANIFEST_NAME} is missing; this is not a medfuse bundle "
            "(expected a NAME.medfuse directory with manifest.json)"
        )
    text = read_bounded(
        manifest_path,
        MANIFEST_LIMITS.max_bytes,
        what=f"bundle {label}: {MANIFEST_NAME}",
        error=ManifestError,
    )
    state = check_trust(text, _read_signature(p / SIGNATURE_NAME), policy, label=label)
    bundle = Bundle(p, _parse_manifest(text, label), signature=state)
    logger.debug("opened %r (%s)", bundle, state.status)
    return bundle


def _open_zip(path: Path, policy: TrustPolicy) -> Bundle:
    from medfuse.bundle.archive import ZipBundle

    archive = ZipBundle.open(path)
    state = check_trust(
        archive.manifest_bytes,
        archive.signature_bytes,
        policy,
        label=archive.label,
        archive_sha256=archive.sha256,
    )
    manifest = _parse_manifest(archive.manifest_bytes, archive.label)
    root = archive.extract_verified(_expected_files(manifest))
    bundle = Bundle(root, manifest, source=path, signature=state, archive_sha256=archive.sha256)
    logger.debug("opened %r (%s)", bundle, state.status)
    return bundle


def _read_signature(path: Path) -> bytes | None:
    """The signature file's bytes (``None`` when absent); an oversized or unreadable one comes
    back as bytes the signature parser rejects, so it reads as an invalid signature."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            return fh.read(SMALL_DOCUMENT_LIMITS.max_bytes + 1)
    except OSError:
        return b""


def _parse_manifest(text: bytes, label: str) -> Manifest:
    where = f"bundle {label}: {MANIFEST_NAME}"
    data = load_json(text, source=where, error=ManifestError, limits=MANIFEST_LIMITS)
    try:
        return Manifest.from_dict(data)
    except BundleError as exc:
        raise type(exc)(f"{where}: {exc}") from exc


def _expected_files(manifest: Manifest) -> Mapping[str, str]:
    """Every file the manifest pins: its artifacts, variant files and engine plans."""
    return {
        **manifest.artifacts,
        **{v.file: v.sha256 for v in manifest.variants.values()},
        **{e.file: e.sha256 for e in manifest.engines.values()},
    }
