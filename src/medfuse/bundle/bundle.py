"""Open a bundle (a ``NAME.medfuse/`` directory or a zip of one) and use its files safely.

Every file handed out by :meth:`Bundle.file` has had its sha256 checked against the manifest, so
a damaged artifact is an :class:`~medfuse.errors.IntegrityError` naming the file, never a crash
deep inside ONNX Runtime or TensorRT.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from medfuse.bundle.integrity import DAMAGED_HINT, check_sha256
from medfuse.bundle.manifest import MANIFEST_NAME, Manifest, check_relative_path
from medfuse.bundle.spec import ModelSpec
from medfuse.errors import BundleError, IntegrityError, ManifestError

__all__ = ["Bundle", "VerifyProblem", "VerifyReport", "open_bundle"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyProblem:
    """One thing wrong with a bundle: a ``missing`` or ``mismatch``-ed artifact, or a variant /
    engine file that is ``unlisted`` in the manifest's artifacts."""

    file: str
    kind: Literal["missing", "mismatch", "unlisted"]
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

    def __init__(self, path: Path, manifest: Manifest, *, source: Path | None = None) -> None:
        self._path = path
        self._manifest = manifest
        self._source = source

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
        return path

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
        """Check every artifact's sha256 and that every variant / engine file is listed.

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
        referenced: Mapping[str, str] = {
            **{v.file: f"variant {p!r}" for p, v in m.variants.items()},
            **{e.file: f"engine {k!r}" for k, e in m.engines.items()},
        }
        for rel, what in referenced.items():
            if rel not in m.artifacts:
                problems.append(
                    VerifyProblem(
                        rel, "unlisted", f"{rel} ({what}) is not listed in the manifest's artifacts"
                    )
                )
        logger.info("verified bundle: %d file(s) ok, %d problem(s)", len(ok), len(problems))
        return VerifyReport(tuple(ok), tuple(problems))


def open_bundle(path: str | Path) -> Bundle:
    """Open a bundle directory (``NAME.medfuse/``), its ``manifest.json``, or a zip of it.

    A zip is extracted once into a private cache directory keyed by the zip's sha256
    (``$MEDFUSE_CACHE_DIR`` or ``~/.cache/medfuse/bundles``) and used read-only.

    Parameters
    ----------
    path:
        The bundle directory, its manifest file, or a ``.zip``.

    Returns
    -------
    Bundle
        The opened bundle; artifacts are verified when used, not here.

    Raises
    ------
    BundleError
        The path does not exist or is not a bundle.
    ManifestError
        The manifest is missing, not JSON, or has an invalid field (the message names it).
    IncompatibleBundleError
        The manifest's schema is newer than this medfuse reads.
    """
    p = Path(path).expanduser()
    source: Path | None = None
    if p.is_file() and p.name == MANIFEST_NAME:
        p = p.parent
    elif p.is_file():
        from medfuse.bundle.archive import extract_zip_bundle

        source = p
        p = extract_zip_bundle(p)
    elif not p.exists():
        raise BundleError(
            f"bundle {p.name or str(p)!r} not found; give a NAME.medfuse directory or a zip of one"
        )
    manifest_path = p / MANIFEST_NAME
    label = (source or p).name
    if not manifest_path.is_file():
        raise ManifestError(
            f"bundle {label}: {MANIFEST_NAME} is missing; this is not a medfuse bundle "
            "(expected a NAME.medfuse directory with manifest.json)"
        )
    try:
        text = manifest_path.read_bytes()
    except OSError as exc:
        raise ManifestError(
            f"bundle {label}: cannot read {MANIFEST_NAME} ({exc.strerror})"
        ) from exc
    try:
        manifest = Manifest.from_json(text)
    except BundleError as exc:
        raise type(exc)(f"bundle {label}: {MANIFEST_NAME}: {exc}") from exc
    bundle = Bundle(p, manifest, source=source)
    logger.debug("opened %r", bundle)
    return bundle
