"""``medfuse keygen`` / ``sign`` and the bundle-trust options, end to end through the real CLI.

Also: hostile manifests end in a one-line error (exit 1), never a traceback, in every verb that
opens a bundle.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import screening_fixtures as fx
from medfuse.bundle.integrity import sha256_file

TRUST_VERBS = ("run", "demo", "validate", "inspect", "bench", "build", "serve", "export-triton")


def _cli(*args: str, tmp: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*fx.CLI, *args],
        capture_output=True,
        text=True,
        env={**fx.cli_env(tmp), **(env or {})},
        timeout=300,
    )


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(fx.shipped_or_tiny_bundle(tmp_path_factory.mktemp("shipped")))


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medfuse.synthetic import generate_studies

    root = tmp_path_factory.mktemp("studies") / "in"
    generate_studies(root, 1, seed=5)
    return root


@pytest.fixture
def signed(shipped: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the shipped bundle signed with a new key: (bundle, public key, other key)."""
    bundle = shutil.copytree(shipped, tmp_path / "ref.medfuse")
    for name in ("publisher", "stranger"):
        out = _cli("keygen", str(tmp_path / "keys" / name), tmp=tmp_path)
        assert out.returncode == 0, out.stderr
    out = _cli("sign", str(bundle), "--key", str(tmp_path / "keys" / "publisher.key"), tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"sha256 {sha256_file(bundle / 'manifest.json')}" in out.stdout
    return bundle, tmp_path / "keys" / "publisher.pub", tmp_path / "keys" / "stranger.pub"


def test_every_bundle_verb_takes_the_trust_options() -> None:
    from medfuse.cli.main import _parser

    sub = next(
        a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    for verb in TRUST_VERBS:
        options = {o for a in sub.choices[verb]._actions for o in a.option_strings}
        assert {"--trusted-key", "--expect-sha256"} <= options, verb


def test_inspect_shows_signature_state(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, publisher, _ = signed
    out = _cli("inspect", str(bundle), "--trusted-key", str(publisher), "--json", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["signature"]["status"] == "signed" and doc["signature"]["trusted"] is True
    assert doc["sha256"] == sha256_file(bundle / "manifest.json")
    (bundle / "manifest.json.sig").unlink()
    out = _cli("inspect", str(bundle), tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "signature: unsigned" in out.stdout


def test_run_refuses_a_bundle_signed_by_another_key(
    signed: tuple[Path, Path, Path], studies: Path, tmp_path: Path
) -> None:
    bundle, publisher, stranger = signed
    results = tmp_path / "out" / "results.jsonl"
    base = ["run", str(studies), "--bundle", str(bundle), "--out", str(results)]
    out = _cli(*base, "--trusted-key", str(stranger), tmp=tmp_path)
    assert out.returncode == 1
    assert "refused by the trust policy (--trusted-key)" in out.stderr
    assert "Traceback" not in out.stderr and not results.exists()
    out = _cli(*base, "--trusted-key", str(publisher), tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(results.read_text().splitlines()[0])["status"] == "ok"


def test_env_var_policy_reaches_validate(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, _, stranger = signed
    out = _cli("validate", str(bundle), tmp=tmp_path, env={"MEDFUSE_TRUSTED_KEYS": str(stranger)})
    assert out.returncode == 1
    assert "refused by the trust policy ($MEDFUSE_TRUSTED_KEYS)" in out.stderr


def test_expect_sha256(shipped: Path, tmp_path: Path) -> None:
    digest = sha256_file(shipped / "manifest.json")
    assert _cli("inspect", str(shipped), "--expect-sha256", digest, tmp=tmp_path).returncode == 0
    out = _cli("inspect", str(shipped), "--expect-sha256", "f" * 64, tmp=tmp_path)
    assert out.returncode == 1 and "not the bundle that was pinned" in out.stderr
    out = _cli("inspect", str(shipped), "--expect-sha256", "xyz", tmp=tmp_path)
    assert out.returncode == 2 and "64 hex digits" in out.stderr


@pytest.mark.parametrize(
    ("case", "text", "message"),
    [
        ("deep", "[" * 200_000, "nested 200000 levels deep"),
        ("huge-number", '{"schema_version": ' + "9" * 5001 + "}", "a number of 5001 characters"),
    ],
)
@pytest.mark.parametrize("verb", ["inspect", "validate", "run"])
def test_hostile_manifest_is_a_clean_error(
    verb: str, case: str, text: str, message: str, studies: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / f"{case}.medfuse"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(text)
    args = {
        "inspect": ["inspect", str(bundle)],
        "validate": ["validate", str(bundle)],
        "run": ["run", str(studies), "--bundle", str(bundle), "--out", str(tmp_path / "r.jsonl")],
    }[verb]
    out = _cli(*args, tmp=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"medfuse {verb}: error: bundle {case}.medfuse: manifest.json: {message}" in out.stderr
