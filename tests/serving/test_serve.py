"""``medfuse serve`` end to end: a real Triton server (PyTriton) on loopback, real clients.

The server runs in the serve Python (``$MEDFUSE_SERVE_PYTHON``, see ``.ci/run``), the client
side in ``client_driver.py`` there too (it has tritonclient); expected values come from an
in-process :class:`Session` on the same inputs. Request counts are bounded; the server is always
stopped (fixture teardown).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_helpers import SKIP_REASON, fixtures, run_client, running_server, serve_python

PYTHON = serve_python()
pytestmark = pytest.mark.skipif(PYTHON is None, reason=SKIP_REASON)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def bundle(workspace: Path) -> Path:
    pytest.importorskip("onnx")
    return Path(fixtures.tiny_reference_bundle(workspace / "bundle"))


@pytest.fixture(scope="module")
def studies(workspace: Path) -> Path:
    from medfuse.synthetic import generate_studies

    root = workspace / "studies"
    generate_studies(root, 4, seed=3)
    return root


@pytest.fixture(scope="module")
def server(workspace: Path, bundle: Path) -> Iterator[dict[str, Any]]:
    assert PYTHON is not None
    with running_server(
        PYTHON, bundle, workspace, "--max-batch", "8", "--max-queue-delay-us", "20000"
    ) as info:
        yield info


def _job(server: dict[str, Any], protocol: str, **kw: Any) -> dict[str, Any]:
    port = server["http_port"] if protocol == "http" else server["grpc_port"]
    return {
        "url": f"127.0.0.1:{port}",
        "protocol": protocol,
        "model": server["models"]["tensor"],
        **kw,
    }


def _feeds(spec: Any, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {i.name: rng.normal(size=i.batch_shape(n)).astype(np.float32) for i in spec.inputs}
    feeds[spec.presence_input.name] = (rng.random((n, 3)) > 0.3).astype(np.float32)
    return feeds


def _payloads(studies: Path, out: Path) -> list[Path]:
    from medfuse.runtime.dicom import discover_studies
    from medfuse.serving.study import encode_study

    out.mkdir(exist_ok=True)
    files = []
    for i, study in enumerate(discover_studies(studies).studies):
        data = encode_study(
            Path(inst.path).read_bytes() for s in study.series for inst in s.instances
        )
        (out / f"s{i}.bin").write_bytes(data)
        files.append(out / f"s{i}.bin")
    return files


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_tensor_endpoint_matches_session(
    server: dict[str, Any], bundle: Path, workspace: Path, protocol: str
) -> None:
    from medfuse.runtime.session import Session

    with Session(bundle) as session:
        spec = session.spec
        assert spec is not None
        feeds = _feeds(spec, 3, seed=7)
        expected = {k: v.copy() for k, v in session.infer(feeds).items()}
    np.savez(workspace / f"in-{protocol}.npz", **feeds)
    job = _job(
        server,
        protocol,
        kind="tensors",
        npz_in=str(workspace / f"in-{protocol}.npz"),
        npz_out=str(workspace / f"out-{protocol}.npz"),
        outputs=[o.name for o in spec.outputs],
    )
    run_client(PYTHON or "", job, workspace)
    got = dict(np.load(workspace / f"out-{protocol}.npz"))
    for name, want in expected.items():
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_study_endpoint_gives_the_medfuse_run_record(
    server: dict[str, Any], bundle: Path, studies: Path, workspace: Path, protocol: str
) -> None:
    from medfuse.runtime.dicom import discover_studies
    from medfuse.runtime.results import ResultRecord
    from medfuse.runtime.session import Session

    payloads = _payloads(studies, workspace / "payloads")
    answer = run_client(
        PYTHON or "",
        _job(server, protocol, kind="studies", payloads=[str(p) for p in payloads], concurrency=4),
        workspace,
    )
    records = answer["records"]
    secret = fixtures.read_secret(workspace / "home" / "study-key.secret")
    found = discover_studies(studies).studies
    with Session(bundle) as session:
        outcomes = list(session.predict_many(found, batch_size=2, workers=0))
        model = session.info.model_info()
    assert len(records) == len(found) == 4
    for study, outcome, got in zip(found, outcomes, records, strict=True):
        want = ResultRecord.from_outcome(study.key(secret), outcome, model).to_json()
        assert got["study"] == fixtures.expected_key(study.uid, secret)
        # the served record is the one medfuse run writes: what it rests on included
        keys = ("schema", "study", "status", "modalities", "provenance", "warnings", "model")
        assert {k: got[k] for k in keys} == {k: want[k] for k in keys}
        for name, out in want["outputs"].items():
            g = got["outputs"][name]
            assert g["kind"] == out["kind"]
            if out["kind"] == "classification":
                assert g["top"] == out["top"]
                labels = list(out["probabilities"])
                np.testing.assert_allclose(
                    [g["probabilities"][k] for k in labels],
                    [out["probabilities"][k] for k in labels],
                    atol=1e-5,
                )
            else:
                np.testing.assert_allclose(g["value"], out["value"], atol=1e-5)
        assert set(got["timing_ms"]) >= {"read", "preprocess", "inference", "total"}


def test_dynamic_batching_forms_batches(
    server: dict[str, Any], workspace: Path, bundle: Path
) -> None:
    from medfuse.bundle import open_bundle

    spec = open_bundle(bundle).spec
    np.savez(workspace / "conc.npz", **_feeds(spec, 32, seed=11))
    job = _job(
        server,
        "http",
        kind="tensors",
        npz_in=str(workspace / "conc.npz"),
        npz_out=str(workspace / "conc-out.npz"),
        outputs=[o.name for o in spec.outputs],
        concurrency=16,
    )
    run_client(PYTHON or "", job, workspace)
    model = server["models"]["tensor"]
    stats = run_client(PYTHON or "", _job(server, "http", kind="stats", models=[model]), workspace)
    entry = stats[model]["model_stats"][0]
    sizes = {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in entry["batch_stats"]}
    assert int(entry["inference_count"]) >= 32
    assert int(entry["execution_count"]) < int(entry["inference_count"])
    assert max(sizes) > 1, f"no batch larger than 1 was formed: {sizes}"


def test_corrupt_studies_get_phi_free_errors_and_the_server_goes_on(
    server: dict[str, Any], studies: Path, workspace: Path
) -> None:
    from medfuse.serving.study import MAGIC

    bad_root = workspace / "bad-studies"
    if not bad_root.exists():
        import shutil

        shutil.copytree(studies, bad_root)
        fixtures.plant_phi(bad_root)
        fixtures.make_error_study(bad_root)
    good, *_ = _payloads(studies, workspace / "payloads-good")
    err_file = next(bad_root.rglob("IMERR0001"))
    bad = workspace / "bad"
    bad.mkdir(exist_ok=True)
    cases = {
        "garbage": b"not a study at all" * 40,
        "empty-framing": MAGIC,
        "truncated-framing": good.read_bytes()[:5000],
        "truncated-pixels": err_file.read_bytes(),
        "not-dicom": MAGIC + (1).to_bytes(4, "little") + (5).to_bytes(8, "little") + b"hello",
    }
    paths = []
    for name, data in cases.items():
        (bad / name).write_bytes(data)
        paths.append(str(bad / name))
    paths.append(str(good))
    answer = run_client(
        PYTHON or "", _job(server, "grpc", kind="studies", payloads=paths, concurrency=3), workspace
    )
    records = answer["records"]
    assert [r["status"] for r in records] == ["error"] * len(cases) + ["ok"]
    text = json.dumps(records)
    for needle in (
        *fixtures.dicom_uids(bad_root),
        *fixtures.header_strings(bad_root),
        *fixtures.PHI_SENTINELS.values(),
        str(workspace),
        "/tmp/",
    ):
        assert needle not in text
    for r in records[:-1]:
        assert r["error"]["type"] in {
            "DicomError",
            "CorruptDicomError",
            "NotDicomError",
            "PixelDataLengthError",
            "StudyError",
        }
        assert r["error"]["message"]
    assert server["proc"].poll() is None
