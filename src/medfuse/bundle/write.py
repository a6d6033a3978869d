"""Write a new bundle, or add variants, files and engines to one — atomically.

:func:`write_bundle` builds the whole bundle in a temporary directory beside its destination and
renames it into place, so a crash leaves either no bundle or a complete one.
:func:`update_bundle` first copies every new file to a temporary name inside the bundle (the step
that can fail: an unreadable source, a full disk), then renames them over their targets and
replaces ``manifest.json`` last. An update that fails while copying leaves the bundle exactly as
it was; files the new manifest drops are deleted only after it is in place.

A variant saved with ONNX external data brings its data files along (found in its protobuf,
copied from beside the source, listed and hashed like every artifact). Changing a signed bundle
removes its signature, which no longer covers the new manifest;
:func:`~medfuse.bundle.publish.sign_bundle` signs it (again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfuse.bundle.bundle import Bundle, open_bundle
from medfuse.bundle.external_data import external_data_locations, resolve_location
from medfuse.bundle.integrity import sha256_file
from medfuse.bundle.manifest import (
    MANIFEST_NAME,
    EngineRecord,
    GoldenRecord,
    Manifest,
    Provenance,
    Variant,
    check_engine_key,
    check_precision,
    check_relative_path,
)
from medfuse.bundle.signing import SIGNATURE_NAME
from medfuse.bundle.spec import ModelSpec
from medfuse.bundle.trust import NO_POLICY
from medfuse.errors import (
    BundleError,
)

__all__ = [
    "VariantSource",
    "update_bundle",
    "variant_filename",
    "write_bundle",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
EMPTY_DIRS = ("engines", "timing-caches")


@dataclass(frozen=True)
class VariantSource:
    """An ONNX file to add as a precision variant, with its accuracy-gate figures and, for a
    quantized variant, its calibration provenance (method, number of studies, set hash)."""

    path: Path
    accuracy: Mapping[str, Any] = field(default_factory=dict)
    calibration: Mapping[str, Any] | None = None
    tolerance: Mapping[str, Any] | None = None


def variant_filename(precision: str) -> str:
    """The file name a variant gets in a bundle: ``model.<precision>.onnx``."""
    return f"model.{precision}.onnx"


def engine_filename(key: str) -> str:
    """The file name an engine gets in a bundle: ``engines/<key>.plan``."""
    return f"engines/{key}.plan"


def _copy_hashed(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` (fsynced), returning the sha256 of the bytes written."""
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on this platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (temporary file, fsync, rename, fsync dir)."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _check_source(src: Path, what: str) -> Path:
    src = Path(src)
    if not src.is_file():
        raise BundleError(f"{what}: source {src.name!r} is not a readable file")
    return src


def _plan_files(
    variants: Mapping[str, VariantSource],
    files: Mapping[str, Path],
    existing: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    plan: dict[str, Path] = {}
    for precision, source in variants.items():
        check_precision(precision, f"variants[{precision!r}]")
        plan[variant_filename(precision)] = _check_source(source.path, f"variant {precision!r}")
    for rel, src in files.items():
        check_relative_path(rel, f"files[{rel!r}]")
        if rel in plan:
            raise BundleError(f"files[{rel!r}]: is a variant's file; give it as a variant instead")
        plan[rel] = _check_source(src, f"files[{rel!r}]")
    _plan_external_data(plan, variants, existing or {})
    return plan


def _plan_external_data(
    plan: dict[str, Path], variants: Mapping[str, VariantSource], existing: Mapping[str, str]
) -> None:
    """Add each variant's external-data files (found beside its source) to ``plan``."""
    for precision, source in variants.items():
        model_file = variant_filename(precision)
        what = f"variant {precision!r} ({source.path.name})"
        for location in external_data_locations(source.path, name=what):
            rel = resolve_location(model_file, location)
            src = source.path.parent / location
            if rel is None:
                raise BundleError(
                    f"{what}: loads external data from {location[:120]!r}, outside its folder; "
                    "save the model with a relative location beside it"
                )
            check_relative_path(rel, f"{what}: external data")
            if rel in plan:
                if plan[rel].resolve() != src.resolve():
                    raise BundleError(
                        f"{what}: its external data {rel} collides with another file of the "
                        "bundle; save each variant's data under its own location"
                    )
                continue
            if not src.is_file():
                raise BundleError(f"{what}: loads external data {rel}, which is not beside it")
            if rel in existing and existing[rel] != sha256_file(src):
                raise BundleError(
                    f"{what}: its external data {rel} would replace the bundle's own {rel}; "
                    "save each variant's data under its own location"
                )
            plan[rel] = src


def write_bundle(
    out: str | Path,
    *,
    spec: ModelSpec,
    variants: Mapping[str, VariantSource],
    files: Mapping[str, Path] | None = None,
    provenance: Provenance,
    overwrite: bool = False,
    golden: GoldenRecord | None = None,
) -> Bundle:
    """Write a new bundle directory: copy the artifacts, hash them, write ``manifest.json``.

    Parameters
    ----------
    out:
        The bundle directory to create, by convention ``NAME.medfuse``.
    spec:
        The model's inputs, outputs and preprocessing.
    variants:
        Precision (``"fp32"``, ``"fp16"``, ``"int8"``, ``"int8-cpu"``, …) → ONNX source; each
        becomes ``model.<precision>.onnx``.
    files:
        Other artifacts: path inside the bundle (``"golden.npz"``, ``"reports/parity.json"``)
        → source file.
    provenance:
        Tool versions, opset, training config hash, date.
    overwrite:
        Replace an existing bundle at ``out`` (atomically) instead of refusing.
    golden:
        Where the rows of ``golden.npz`` (given in ``files``) came from.

    Returns
    -------
    Bundle
        The new bundle, opened.

    Raises
    ------
    BundleError
        ``out`` exists (without ``overwrite``), a source is missing, or a copy failed.
    ManifestError
        A precision or file path is invalid.
    """
    out = Path(out)
    if not variants:
        raise BundleError("write_bundle: at least one variant is needed (e.g. 'fp32')")
    if out.exists() and not overwrite:
        raise BundleError(f"{out.name} already exists; pass overwrite=True to replace it")
    plan = _plan_files(variants, files or {})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        artifacts: dict[str, str] = {}
        for rel, src in plan.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            try:
                artifacts[rel] = _copy_hashed(src, tmp / rel)
            except OSError as exc:
                raise BundleError(f"cannot copy {rel} into the bundle ({exc.strerror})") from exc
        for d in EMPTY_DIRS:
            (tmp / d).mkdir(exist_ok=True)
        manifest = Manifest(
            model=spec,
            variants={
                p: Variant(
                    precision=p,
                    file=variant_filename(p),
                    sha256=artifacts[variant_filename(p)],
                    accuracy=s.accuracy,
                    calibration=s.calibration,
                    tolerance=s.tolerance,
                )
                for p, s in variants.items()
            },
            engines={},
            artifacts=artifacts,
            provenance=provenance,
            golden=golden,
        )
        write_text_atomic(tmp / MANIFEST_NAME, manifest.to_json())
        _place(tmp, out, overwrite=overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "wrote bundle %s: variants %s, %d artifact(s)", out.name, list(variants), len(artifacts)
    )
    return open_bundle(out, trust=NO_POLICY)


def _place(tmp: Path, out: Path, *, overwrite: bool) -> None:
    """Rename the finished ``tmp`` directory to ``out``, replacing an old one if allowed."""
    old: Path | None = None
    if out.exists():
        if not overwrite:
            raise BundleError(f"{out.name} already exists; pass overwrite=True to replace it")
        old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError as exc:
        if old is not None:
            os.rename(old, out)
        raise BundleError(f"cannot move the new bundle into place as {out.name} ({exc})") from exc
    _fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def update_bundle(
    bundle: Bundle,
    *,
    add_variants: Mapping[str, VariantSource] | None = None,
    add_files: Mapping[str, Path] | None = None,
    add_engines: Mapping[str, tuple[EngineRecord, Path]] | None = None,
    remove_variants: Iterable[str] = (),
    golden: GoldenRecord | None = None,
) -> Bundle:
    """Add (or replace) variants, files and engines in a bundle; remove variants.

    New files are staged under temporary names first; only when every copy succeeded are they
    renamed into place, and ``manifest.json`` is replaced last. An update that fails while
    copying leaves the bundle as it was.

    Parameters
    ----------
    bundle:
        An open, writable bundle (not one opened from a zip).
    add_variants:
        Precision → ONNX source, stored as ``model.<precision>.onnx`` (replacing one there).
    add_files:
        Path inside the bundle → source (reports, timing caches, golden vectors).
    add_engines:
        Cache key → (record, plan file). The plan is stored as ``engines/<key>.plan``; the
        record's ``file`` and ``sha256`` are filled in.
    remove_variants:
        Precisions to drop, with their files and the engines built from them.
    golden:
        A new record of where ``golden.npz`` came from (give the file in ``add_files``);
        ``None`` keeps the current record.

    Returns
    -------
    Bundle
        The bundle re-opened with its new manifest.

    Raises
    ------
    BundleError
        A read-only bundle, an unknown variant, an engine for a missing variant, a failed copy.
    """
    if bundle.read_only:
        raise BundleError(
            f"bundle {bundle.label} was opened from a zip and is read-only; unzip it and open "
            "the directory to change it"
        )
    add_variants = dict(add_variants or {})
    add_files = dict(add_files or {})
    add_engines = dict(add_engines or {})
    remove = tuple(remove_variants)
    # the manifest on disk, not a stale copy (the caller opened the bundle under its policy)
    current = open_bundle(bundle.path, trust=NO_POLICY).manifest

    variants = dict(current.variants)
    for p in remove:
        if p not in variants:
            raise BundleError(
                f"bundle {bundle.label} has no {p!r} variant to remove; it has: {', '.join(variants)}"
            )
        if p in add_variants:
            raise BundleError(f"variant {p!r} is both added and removed")
        del variants[p]
    referenced = {v.file for v in current.variants.values()} | {
        e.file for e in current.engines.values()
    }
    for rel in add_files:
        if rel in referenced or rel.startswith("engines/"):
            raise BundleError(
                f"add_files[{rel!r}]: belongs to a variant or engine; use add_variants / "
                "add_engines for it"
            )
    plan = _plan_files(add_variants, add_files, current.artifacts)
    engines = {
        k: e
        for k, e in current.engines.items()
        if e.variant in variants or e.variant in add_variants
    }
    for key, (record, src) in add_engines.items():
        check_engine_key(key, "add_engines")
        if record.key != key:
            raise BundleError(f"add_engines[{key!r}]: the record's key is {record.key!r}")
        if record.variant not in variants and record.variant not in add_variants:
            raise BundleError(
                f"add_engines[{key!r}]: built from variant {record.variant!r}, which this bundle "
                f"does not have (variants: {', '.join(variants)})"
            )
        plan[engine_filename(key)] = _check_source(src, f"engine {key!r}")
    if not variants and not add_variants:
        raise BundleError("update_bundle: a bundle must keep at least one variant")

    hashes = _stage_and_commit(bundle.path, plan)

    # An engine built from a variant whose graph changed is stale: drop it.
    replaced = {
        p
        for p in add_variants
        if p in current.variants and current.variants[p].sha256 != hashes[variant_filename(p)]
    }
    engines = {k: e for k, e in engines.items() if e.variant not in replaced}

    for p, s in add_variants.items():
        variants[p] = Variant(
            precision=p,
            file=variant_filename(p),
            sha256=hashes[variant_filename(p)],
            accuracy=s.accuracy,
            calibration=s.calibration,
            tolerance=s.tolerance,
        )
    for key, (record, _) in add_engines.items():
        rel = engine_filename(key)
        engines[key] = dataclasses.replace(record, file=rel, sha256=hashes[rel])
    keep = {v.file for v in variants.values()} | {e.file for e in engines.values()}
    artifacts = {
        rel: sha for rel, sha in current.artifacts.items() if rel in keep or rel not in referenced
    }
    artifacts.update(hashes)
    manifest = dataclasses.replace(
        current,
        variants=variants,
        engines=engines,
        artifacts=artifacts,
        golden=golden if golden is not None else current.golden,
    )
    _drop_signature(bundle.path)
    write_text_atomic(bundle.path / MANIFEST_NAME, manifest.to_json())
    for rel in sorted(set(current.artifacts) - set(artifacts)):
        (bundle.path / rel).unlink(missing_ok=True)
        logger.info("removed %s from bundle %s", rel, bundle.label)
    logger.info(
        "updated bundle %s: +%d file(s), -%d variant(s)", bundle.label, len(hashes), len(remove)
    )
    return open_bundle(bundle.path, trust=NO_POLICY)


def _drop_signature(root: Path) -> None:
    """Remove a signature that is about to stop covering the manifest (fails closed: there is
    never a moment when a signature sits beside a manifest it does not cover)."""
    sig = root / SIGNATURE_NAME
    if sig.exists():
        sig.unlink()
        _fsync_dir(root)
        logger.warning(
            "bundle %s changed, so its signature was removed (it covered the old manifest); "
            "sign it again with `medfuse sign %s --key KEY`",
            root.name,
            root.name,
        )


def _stage_and_commit(root: Path, plan: Mapping[str, Path]) -> dict[str, str]:
    """Copy every source to a temp name beside its target, then rename all into place."""
    staged: dict[str, tuple[Path, str]] = {}
    try:
        for rel, src in plan.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
            try:
                staged[rel] = (tmp, _copy_hashed(src, tmp))
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise BundleError(
                    f"cannot copy {rel} into bundle {root.name} ({exc.strerror}); the bundle "
                    "is unchanged"
                ) from exc
    except BaseException:
        for tmp, _ in staged.values():
            tmp.unlink(missing_ok=True)
        raise
    for rel, (tmp, _) in staged.items():
        os.replace(tmp, root / rel)
    for d in {(root / rel).parent for rel in staged}:
        _fsync_dir(d)
    return {rel: sha for rel, (_, sha) in staged.items()}
