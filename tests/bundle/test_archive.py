"""Zipped bundles: limits checked before extraction, duplicate names refused, the trust policy
decided from the zip's own manifest, and a cache that is re-verified on every open."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest

from medfuse.bundle import Bundle, TrustedKey, TrustPolicy, load_public_key, open_bundle
from medfuse.bundle.archive import ZipBundle, ZipLimits
from medfuse.bundle.integrity import sha256_file
from medfuse.bundle.signing import KeyFiles
from medfuse.errors import BundleError, UntrustedBundleError


def _zip(src: Path, out: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(src.parent).as_posix())
        for name, data in (extra or {}).items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # zipfile warns on a duplicate
                zf.writestr(name, data)
    return out


def test_zip_bomb_entry_is_refused_before_extraction(bundle: Bundle, tmp_path: Path) -> None:
    bomb = _zip(bundle.path, tmp_path / "bomb.zip", {"tiny.medfuse/zeros.bin": bytes(8 << 20)})
    with pytest.raises(BundleError, match=r"zeros\.bin' unpacks \d+× its packed size.*zip bomb"):
        open_bundle(bomb)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (ZipLimits(max_entries=3), "more than the 3 a bundle may hold"),
        (ZipLimits(max_entry_bytes=1000), "more than the 1000 allowed for one file"),
        (ZipLimits(max_total_bytes=1000), "more than the 1000 allowed for a bundle"),
    ],
)
def test_size_and_count_limits(
    bundle: Bundle, tmp_path: Path, limits: ZipLimits, message: str
) -> None:
    with pytest.raises(BundleError, match=message):
        ZipBundle.open(_zip(bundle.path, tmp_path / "b.zip"), limits)


def test_no_space_in_the_cache_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    archive = ZipBundle.open(_zip(bundle.path, tmp_path / "b.zip"), ZipLimits(free_space_margin_bytes=1 << 62))
    with pytest.raises(BundleError, match="free some space or point MEDFUSE_CACHE_DIR elsewhere"):
        archive.extract_verified({})


def test_two_manifest_entries_are_refused(bundle: Bundle, tmp_path: Path) -> None:
    twice = _zip(bundle.path, tmp_path / "twice.zip", {"tiny.medfuse/manifest.json": b"{}"})
    with pytest.raises(BundleError, match=r"manifest\.json' appears twice"):
        open_bundle(twice)


def test_names_differing_only_in_case_are_refused(bundle: Bundle, tmp_path: Path) -> None:
    z = _zip(bundle.path, tmp_path / "case.zip", {"tiny.medfuse/GOLDEN.npz": b"x"})
    with pytest.raises(BundleError, match="differs only in case"):
        open_bundle(z)


def test_unsafe_entry_names_are_refused(bundle: Bundle, tmp_path: Path) -> None:
    for name in ("tiny.medfuse/../x", "/abs", "tiny.medfuse/./x", "a\\b"):
        z = _zip(bundle.path, tmp_path / "u.zip", {name: b"x"})
        with pytest.raises(BundleError, match="refusing to extract"):
            open_bundle(z)


def test_several_bundles_in_one_zip_are_refused(bundle: Bundle, tmp_path: Path) -> None:
    z = _zip(bundle.path, tmp_path / "two.zip", {"other.medfuse/manifest.json": b"{}"})
    with pytest.raises(BundleError, match="holds 2 bundles"):
        open_bundle(z)


def test_edited_cache_copy_is_replaced_from_the_zip(bundle: Bundle, tmp_path: Path) -> None:
    z = _zip(bundle.path, tmp_path / "b.zip")
    first = open_bundle(z)
    model = first.path / "model.fp32.onnx"
    model.write_bytes(model.read_bytes()[:-8] + b"\x00" * 8)  # the cache edited behind our back
    (first.path / "manifest.json").write_text("{}")
    again = open_bundle(z)
    assert again.path == first.path
    assert sha256_file(again.variant_file("fp32")) == bundle.manifest.variants["fp32"].sha256
    assert again.manifest == bundle.manifest  # from the zip, never from the cache
    assert sha256_file(z) == again.archive_sha256


def test_deleted_cache_file_is_restored(bundle: Bundle, tmp_path: Path) -> None:
    z = _zip(bundle.path, tmp_path / "b.zip")
    (open_bundle(z).path / "golden.npz").unlink()
    assert open_bundle(z).file("golden.npz").is_file()


def test_untrusted_zip_is_refused_before_extraction(
    bundle: Bundle, keys: dict[str, KeyFiles], tmp_path: Path
) -> None:
    policy = TrustPolicy(trusted_keys=(TrustedKey(load_public_key(keys["publisher"].public)),))
    with pytest.raises(UntrustedBundleError, match=r"b\.zip.*unsigned"):
        open_bundle(_zip(bundle.path, tmp_path / "b.zip"), trust=policy)
    assert not (tmp_path / "cache").exists()


def test_signed_zip_opens_under_the_policy(
    bundle: Bundle, keys: dict[str, KeyFiles], tmp_path: Path
) -> None:
    from medfuse.bundle import load_signing_key, sign_bundle

    sign_bundle(bundle.path, load_signing_key(keys["publisher"].private))
    z = _zip(bundle.path, tmp_path / "b.zip")
    policy = TrustPolicy(trusted_keys=(TrustedKey(load_public_key(keys["publisher"].public)),))
    opened = open_bundle(z, trust=policy)
    assert opened.signature is not None and opened.signature.trusted


def test_expect_sha256_accepts_the_zip_digest_or_the_manifest_digest(
    bundle: Bundle, tmp_path: Path
) -> None:
    z = _zip(bundle.path, tmp_path / "b.zip")
    for digest in (sha256_file(z), sha256_file(bundle.path / "manifest.json")):
        assert open_bundle(z, trust=TrustPolicy(expect_sha256=digest))
    with pytest.raises(UntrustedBundleError, match=r"zip file .*not the expected"):
        open_bundle(z, trust=TrustPolicy(expect_sha256="1" * 64))
