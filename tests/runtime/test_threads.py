"""The thread policy: bounds (API and the real CLI in a subprocess) and the plan's pure logic."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import screening_fixtures as fx
from helpers.onnx_bundles import fusion_bundle
from medfuse.bundle import Bundle
from medfuse.errors import ThreadCountError, UsageError
from medfuse.runtime.backends.onnxruntime import OnnxRuntimeBackend
from medfuse.runtime.session import Session
from medfuse.runtime.threads import (
    HARD_MAX_THREADS,
    ThreadPlan,
    check_threads,
    default_workers,
    max_threads,
    plan_threads,
)

# -- check_threads --------------------------------------------------------------------------------


def test_max_threads_is_four_per_core_at_least_16_at_most_256() -> None:
    assert max_threads(1) == 16
    assert max_threads(2) == 16
    assert max_threads(8) == 32
    assert max_threads(40) == 160
    assert max_threads(64) == HARD_MAX_THREADS == 256
    assert max_threads(1000) == 256


@pytest.mark.parametrize("n", [1, 8, 16])
def test_counts_in_range_pass_through(n: int) -> None:
    assert check_threads(n, "--threads", cores=2) == n


@pytest.mark.parametrize("n", [0, -1, 17, 99999])
def test_counts_out_of_range_name_the_range(n: int) -> None:
    with pytest.raises(
        ThreadCountError, match=rf"--threads {n} is outside the allowed range 1\.\.16"
    ):
        check_threads(n, "--threads", cores=2)


def test_zero_only_where_allowed_and_the_error_is_a_usage_error() -> None:
    assert check_threads(0, "workers", cores=2, minimum=0) == 0
    with pytest.raises(UsageError, match=r"workers -1 is outside the allowed range 0\.\.16"):
        check_threads(-1, "workers", cores=2, minimum=0)
    assert check_threads(256, "threads", cores=128) == 256
    with pytest.raises(ThreadCountError, match="at most 256"):
        check_threads(257, "threads", cores=128)


@pytest.mark.parametrize("bad", [True, 2.0, "4", None])
def test_non_integers_are_refused(bad: object) -> None:
    with pytest.raises(ThreadCountError, match=r"must be a whole number in 1\.\.16"):
        check_threads(bad, "threads", cores=2)


# -- plan_threads ---------------------------------------------------------------------------------


def test_pipeline_plan_shares_the_cores_and_does_not_spin() -> None:
    assert plan_threads(2) == ThreadPlan(
        cores=2, workers=2, intra_op=1, inter_op=1, allow_spinning=False
    )
    p16 = plan_threads(16)
    assert (p16.workers, p16.intra_op, p16.allow_spinning) == (4, 12, False)
    assert plan_threads(1).intra_op == 1  # never below one inference thread
    assert plan_threads(64).workers == 4  # workers capped
    assert [default_workers(c) for c in (1, 2, 4, 8, 12, 16, 64)] == [2, 2, 2, 2, 3, 4, 4]


def test_tensor_only_plan_takes_every_core_and_may_spin() -> None:
    plan = plan_threads(8, pipeline=False)
    assert (plan.workers, plan.intra_op, plan.allow_spinning) == (0, 8, True)
    assert plan_threads(8, workers=0).allow_spinning  # inline preprocessing: nothing to share


def test_explicit_counts_override_but_are_bounded() -> None:
    plan = plan_threads(2, workers=1, intra_op=3)
    assert (plan.workers, plan.intra_op, plan.allow_spinning) == (1, 3, False)
    assert plan_threads(4, workers=3).intra_op == 1
    assert plan_threads(4, workers=1).intra_op == 3
    assert plan_threads(2, allow_spinning=True).allow_spinning
    assert not plan_threads(2, pipeline=False, allow_spinning=False).allow_spinning
    with pytest.raises(ThreadCountError, match="threads 99999"):
        plan_threads(2, intra_op=99999)
    with pytest.raises(ThreadCountError, match="workers 500"):
        plan_threads(2, workers=500)
    described = plan_threads(2).describe()
    assert described == "2 read worker(s) + 1 inference thread(s) on 2 core(s), spinning off"


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    made: Bundle = fusion_bundle(tmp_path_factory.mktemp("threads"))
    return made


def test_session_refuses_a_thread_explosion_before_loading(bundle: Bundle) -> None:
    with pytest.raises(ThreadCountError, match="threads 99999 is outside the allowed range"):
        Session(bundle.path, device="cpu", threads=99999)
    with pytest.raises(ThreadCountError, match="workers 99999"):
        Session(bundle.path, device="cpu", workers=99999)


def test_session_applies_the_plan_to_onnx_runtime(bundle: Bundle) -> None:
    with Session(bundle.path, device="cpu", cores=2) as s:
        assert (s.thread_plan.workers, s.thread_plan.intra_op) == (2, 1)
        assert s.info.threads == 1
        be = s.backend
        assert isinstance(be, OnnxRuntimeBackend)
        assert (be.threads, be.allow_spinning) == (1, False)
    with Session(bundle.path, device="cpu", threads=2, pipeline=False, cores=2) as s:
        assert isinstance(s.backend, OnnxRuntimeBackend)
        assert s.backend.allow_spinning is True
        assert s.info.threads == 2
        with pytest.raises(ThreadCountError, match="workers 99999"):
            s.predict_many([], workers=99999)


# -- the real CLI ---------------------------------------------------------------------------------

# Runs the CLI, then reports this process's OS thread count (native ORT threads included).
COUNT_THREADS = """
import json, sys
from medfuse.cli.main import main
rc = main(sys.argv[1:])
with open("/proc/self/status") as fh:
    threads = [line for line in fh if line.startswith("Threads:")]
print(json.dumps({"threads": int(threads[0].split()[1]) if threads else 0}), file=sys.stderr)
sys.exit(rc)
"""


@pytest.mark.parametrize(
    "verb",
    [
        ["run", "{studies}", "--out", "{tmp}/r.jsonl", "--threads", "99999"],
        ["run", "{studies}", "--out", "{tmp}/r.jsonl", "--workers", "99999"],
        ["validate", "--threads", "99999"],
        ["bench", "--threads", "99999", "--max-seconds", "0.2"],
    ],
    ids=["run-threads", "run-workers", "validate", "bench"],
)
def test_cli_refuses_99999_threads_with_exit_2(
    verb: list[str], bundle: Bundle, tmp_path: Path
) -> None:
    studies = tmp_path / "studies"
    from medfuse.synthetic import generate_studies

    if verb[0] == "run":
        generate_studies(studies, 1, seed=3)
    args = [a.format(studies=studies, tmp=tmp_path) for a in verb]
    args[1:1] = ["--bundle", str(bundle.path)] if verb[0] == "run" else []
    if verb[0] != "run":
        args.append(str(bundle.path))
    proc = subprocess.run(
        [sys.executable, "-c", COUNT_THREADS, *args],
        capture_output=True,
        text=True,
        env=fx.cli_env(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert re.search(
        r"99999 is outside the allowed range [01]\.\.\d+ on this machine", proc.stderr
    ), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["threads"] < 32  # nothing near 99999 threads was ever started
    results = tmp_path / "r.jsonl"
    assert not results.exists()  # refused before anything was created
