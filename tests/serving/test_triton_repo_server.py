"""An exported Triton repository loaded by a real ``tritonserver`` (the build PyTriton ships).

That build has only the ``python`` backend, so what runs here is the Python-backend
preprocessing model ``<model>_preprocess`` as exported: it is loaded by the server, answers
studies (medfuse framing, a tar, sent with tritonclient over HTTP) with tensors equal to
medfuse's in-process preprocessing of the same study, and answers corrupt studies with PHI-free
errors while going on. The network (``onnxruntime`` backend) and so the ensemble do not load in
this build; the test asserts the server's own message. The ensemble's wiring is then run with a
test-only Python-backend stand-in for the network (the same ``model.onnx`` in ONNX Runtime).

Servers run from the serve Python's PyTriton (``$MEDFUSE_SERVE_PYTHON``, see ``.ci/run``) on
free loopback ports and are always stopped (fixture teardown); request counts are small.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_helpers import SKIP_REASON, fixtures, serve_python
from tritonserver_helpers import (
    TritonDist,
    TritonProcess,
    run_job,
    running_tritonserver,
    server_metadata,
    with_python_standin,
)

from medfuse.bundle import ModelSpec, open_bundle
from medfuse.serving.triton_repo import TritonRepository, export_triton_repository

PYTHON = serve_python()
DIST = TritonDist.find(PYTHON) if PYTHON else None
pytestmark = [
    pytest.mark.skipif(PYTHON is None, reason=SKIP_REASON),
    pytest.mark.skipif(
        PYTHON is not None and DIST is None,
        reason="the serve Python's PyTriton has no tritonserver binary / Python-backend stub",
    ),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tritonserver")


@pytest.fixture(scope="module")
def bundle(workspace: Path) -> Path:
    pytest.importorskip("onnx")
    return Path(fixtures.tiny_reference_bundle(workspace / "bundle"))


@pytest.fixture(scope="module")
def repo(workspace: Path, bundle: Path) -> TritonRepository:
    return export_triton_repository(bundle, workspace / "repo")


@pytest.fixture(scope="module")
def spec(bundle: Path) -> ModelSpec:
    return open_bundle(bundle).spec


@pytest.fixture(scope="module")
def studies(workspace: Path) -> list[Path]:
    """Two synthetic studies (CT, MR, X-ray), one folder each (``root/patient/study/series``)."""
    from medfuse.synthetic import generate_studies

    root = workspace / "studies"
    generate_studies(root, 2, seed=5)
    folders = sorted(s for p in root.iterdir() if p.is_dir() for s in p.iterdir() if s.is_dir())
    assert len(folders) == 2
    return folders


@pytest.fixture(scope="module")
def server(workspace: Path, repo: TritonRepository) -> Iterator[TritonProcess]:
    assert DIST is not None
    with running_tritonserver(DIST, repo.path, workspace / "server", [repo.preprocess]) as proc:
        yield proc


def _framed(folder: Path, out: Path) -> Path:
    """The README's form: every file of the study folder in the medfuse framing."""
    from medfuse.serving.study import encode_study_folder

    out.write_bytes(encode_study_folder(folder))
    return out


def _tarred(folder: Path, out: Path) -> Path:
    """``tar -cf study.tar STUDY_DIR``, built with tarfile (uncompressed ustar)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.add(folder, arcname=folder.name)
    out.write_bytes(buf.getvalue())
    return out


def _in_process(folder: Path, spec: ModelSpec) -> dict[str, np.ndarray]:
    """medfuse's preprocessing of the study folder in this process (no payload, no Triton)."""
    from medfuse.runtime.dicom import discover_studies
    from medfuse.runtime.preprocess import preprocess_study

    (study,) = discover_studies(folder).studies
    arrays = {i.name: np.zeros(i.batch_shape(1), dtype=np.dtype(i.dtype)) for i in spec.inputs}
    preprocess_study(study, spec, {k: v[0] for k, v in arrays.items()})
    return arrays


def _infer(
    server: TritonProcess, model: str, requests: list[list[Path]], outputs: list[str], out: Path
) -> list[dict[str, Any]]:
    assert PYTHON is not None
    out.mkdir(parents=True, exist_ok=True)
    job = {
        "kind": "infer",
        "url": server.http_url,
        "model": model,
        "requests": [[str(p) for p in r] for r in requests],
        "outputs": outputs,
        "out": str(out),
    }
    answers: list[dict[str, Any]] = run_job(PYTHON, job, out)["answers"]
    return answers


def test_preprocess_model_is_loaded_by_tritonserver(
    server: TritonProcess, repo: TritonRepository
) -> None:
    meta = server_metadata(server)
    assert meta["name"] == "triton" and meta["version"]
    log = server.log_text()
    assert f"successfully loaded '{repo.preprocess}'" in log
    assert f"loading: {repo.model}:" not in log  # explicit control: only what was asked for


def test_preprocess_outputs_equal_in_process_preprocessing(
    server: TritonProcess, repo: TritonRepository, spec: ModelSpec, studies: list[Path],
    workspace: Path,
) -> None:  # fmt: skip
    pay = workspace / "payloads"
    pay.mkdir(exist_ok=True)
    a, b = (_framed(f, pay / f"s{i}.bin") for i, f in enumerate(studies))
    tar_a = _tarred(studies[0], pay / "s0.tar")
    names = [i.name for i in spec.inputs]
    answers = _infer(server, repo.preprocess, [[a], [b, a], [tar_a]], names, workspace / "pre")
    assert [x["ok"] for x in answers] == [True, True, True], answers
    want = [_in_process(f, spec) for f in studies]
    got = [dict(np.load(x["npz"])) for x in answers]
    rows = [(got[0], 0, want[0]), (got[1], 0, want[1]), (got[1], 1, want[0]), (got[2], 0, want[0])]
    for tensors, row, expected in rows:
        assert set(tensors) == set(names)
        for name in names:
            assert tensors[name].dtype == expected[name].dtype
            assert tensors[name].shape[1:] == expected[name].shape[1:]
            np.testing.assert_array_equal(tensors[name][row], expected[name][0], err_msg=name)
    for name in names:  # not zeros == zeros: every input has data in at least one study
        assert any(np.any(w[name] != 0) for w in want), name


def test_corrupt_studies_get_phi_free_errors_and_the_server_goes_on(
    server: TritonProcess, repo: TritonRepository, spec: ModelSpec, studies: list[Path],
    workspace: Path,
) -> None:  # fmt: skip
    import shutil

    from medfuse.serving.study import MAGIC, encode_study_folder

    bad_root = workspace / "bad-studies"
    shutil.copytree(studies[0].parent.parent, bad_root)  # both studies: one has an X-ray
    fixtures.plant_phi(bad_root)
    fixtures.make_error_study(bad_root)
    bad = workspace / "bad"
    bad.mkdir()
    good = _framed(studies[1], bad / "good.bin")
    cases = {
        "garbage": b"not a study at all" * 40,
        "truncated-framing": good.read_bytes()[:5000],
        "not-dicom": MAGIC + (1).to_bytes(4, "little") + (5).to_bytes(8, "little") + b"hello",
        "truncated-pixels": encode_study_folder(bad_root / "e0e0e0e0"),
    }
    files = []
    for name, data in cases.items():
        (bad / name).write_bytes(data)
        files.append([bad / name])
    names = [i.name for i in spec.inputs]
    answers = _infer(server, repo.preprocess, [*files, [good]], names, workspace / "bad-out")
    assert [x["ok"] for x in answers] == [False] * len(cases) + [True], answers
    errors = answers[:-1]
    assert all(x["status"] == "400" for x in errors), errors  # INVALID_ARG: the client's study
    assert all(x["message"].startswith("study #1 of 1: ") for x in errors), errors
    text = " ".join(x["message"] for x in errors)
    for needle in (
        *fixtures.dicom_uids(bad_root),
        *fixtures.header_strings(bad_root),
        *fixtures.PHI_SENTINELS.values(),
        str(workspace),
        "/tmp/",
        "Traceback",
    ):
        assert needle not in text
    np.testing.assert_array_equal(
        np.load(answers[-1]["npz"])["xr"], _in_process(studies[1], spec)["xr"]
    )
    assert server.alive()


def test_preprocess_runs_from_its_execution_env_path(
    bundle: Path, spec: ModelSpec, studies: list[Path], workspace: Path
) -> None:
    """``execution_env`` (``EXECUTION_ENV_PATH``) alone gives the stub medfuse: the server runs
    with a bare ``PATH``, and the serve venv is activated for this model by the Python backend."""
    from medfuse.serving.triton_repo import TritonExportOptions

    assert DIST is not None
    env = str(DIST.python_env)
    repo = export_triton_repository(
        bundle, workspace / "repo-env", TritonExportOptions(execution_env=env)
    )
    good = _framed(studies[1], workspace / "env.bin")
    with running_tritonserver(
        DIST, repo.path, workspace / "server-env", [repo.preprocess], python_on_path=False
    ) as srv:
        (answer,) = _infer(srv, repo.preprocess, [[good]], ["xr"], workspace / "env-out")
        log = srv.log_text()
    assert f"Using Python execution env {env}" in log
    assert answer["ok"], answer
    np.testing.assert_array_equal(np.load(answer["npz"])["xr"], _in_process(studies[1], spec)["xr"])


def test_network_and_ensemble_fail_to_load_for_want_of_the_onnxruntime_backend(
    server: TritonProcess, repo: TritonRepository, studies: list[Path], spec: ModelSpec,
    workspace: Path,
) -> None:  # fmt: skip
    """PyTriton's server build has only the python backend: the network cannot load, nor the
    ensemble that needs it. This is why the exported ensemble has not run under tritonserver
    here. The preprocessing model stays loaded and answering."""
    assert PYTHON is not None
    job = {
        "kind": "load",
        "url": server.http_url,
        "models": [repo.model, repo.ensemble],
        "check": [repo.preprocess],
    }
    answer = run_job(PYTHON, job, workspace)
    missing = "unable to find backend library for backend 'onnxruntime'"
    assert missing in (answer["errors"][repo.model] or "")
    ensemble_error = answer["errors"][repo.ensemble] or ""
    assert f"ensemble '{repo.ensemble}' depends on '{repo.model}'" in ensemble_error
    assert missing in ensemble_error
    assert answer["ready"] == {repo.model: False, repo.ensemble: False, repo.preprocess: True}
    state = {m["name"]: m.get("state") for m in answer["index"]}
    assert state[repo.model] == "UNAVAILABLE" and state[repo.preprocess] == "READY"
    good = _framed(studies[0], workspace / "after-load.bin")
    (after,) = _infer(server, repo.preprocess, [[good]], ["presence"], workspace / "after")
    assert after["ok"] and server.alive()


def test_ensemble_runs_with_a_python_standin_for_the_network(
    bundle: Path, repo: TritonRepository, spec: ModelSpec, studies: list[Path], workspace: Path
) -> None:
    """The ensemble's config and wiring under tritonserver, with the network's exported config
    kept but its backend swapped for a test-only Python model running the same model.onnx in
    ONNX Runtime; outputs equal an in-process Session on in-process preprocessing."""
    from medfuse.runtime.session import Session

    assert DIST is not None
    standin = with_python_standin(repo.path, repo.model, workspace / "repo-standin")
    pay = workspace / "ens-payloads"
    pay.mkdir()
    files = [_framed(f, pay / f"s{i}.bin") for i, f in enumerate(studies)]
    outputs = [o.name for o in spec.outputs]
    with running_tritonserver(DIST, standin, workspace / "server-ens", [repo.ensemble]) as srv:
        answers = _infer(srv, repo.ensemble, [[files[0]], [files[1], files[0]]], outputs, pay)
        log = srv.log_text()
    assert [x["ok"] for x in answers] == [True, True], answers
    assert f"successfully loaded '{repo.model}'" in log  # loaded as the ensemble's dependency
    assert f"successfully loaded '{repo.ensemble}'" in log
    with Session(bundle) as session:
        feeds = [_in_process(f, spec) for f in studies]
        want = [{k: v.copy() for k, v in session.infer(f).items()} for f in feeds]
    got = [dict(np.load(x["npz"])) for x in answers]
    for tensors, row, expected in [
        (got[0], 0, want[0]),
        (got[1], 0, want[1]),
        (got[1], 1, want[0]),
    ]:
        for name in outputs:
            np.testing.assert_allclose(tensors[name][row], expected[name][0], rtol=1e-5, atol=1e-6)
