"""Choosing the CUDA binding (cuda-python, else pycuda) and the one interface both implement.

CPU only: the choice is plain code fed with what importing each binding gave; the end-to-end
checks make the import really fail in a fresh interpreter (``sys.modules[name] = None`` makes
``import name`` raise ImportError) — no CUDA is faked.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
from typing import Any

import pytest

from medfuse.errors import MissingDependencyError, UsageError
from medfuse.runtime.cuda_binding_cudapython import CudaPythonMemory
from medfuse.runtime.cuda_binding_pycuda import PyCudaMemory
from medfuse.runtime.cuda_memory import (
    CUDA_BINDINGS,
    CudaMemory,
    choose_cuda_binding,
    open_cuda_memory,
    select_cuda_binding,
)

BOTH = {"cuda-python": None, "pycuda": None}
NO_CUDA_PYTHON = "No module named 'cuda'"
NO_PYCUDA = "No module named 'pycuda'"

_BLOCK = {
    "cuda-python": ["cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"],
    "pycuda": ["pycuda", "pycuda.driver"],
}


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _run_blocked(blocked: list[str], body: str) -> dict[str, Any]:
    """Run ``body`` in a fresh interpreter where the named bindings cannot be imported."""
    names = [m for b in blocked for m in _BLOCK[b]]
    script = (
        "import json, sys\n"
        f"for _m in {names!r}:\n"
        "    sys.modules[_m] = None\n"
        "out = {}\n" + body + "\nprint(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- the choice, as plain code ------------------------------------------------------------------


def test_cuda_python_is_first_choice() -> None:
    assert CUDA_BINDINGS == ("cuda-python", "pycuda")
    assert choose_cuda_binding(BOTH) == "cuda-python"


def test_pycuda_when_cuda_python_does_not_import() -> None:
    assert choose_cuda_binding({"cuda-python": NO_CUDA_PYTHON, "pycuda": None}) == "pycuda"


def test_prefer_forces_pycuda_even_when_cuda_python_imports() -> None:
    assert choose_cuda_binding(BOTH, prefer="pycuda") == "pycuda"


def test_prefer_forces_cuda_python() -> None:
    assert choose_cuda_binding(BOTH, prefer="cuda-python") == "cuda-python"


def test_preferred_binding_missing_names_it_and_its_install() -> None:
    with pytest.raises(MissingDependencyError) as err:
        choose_cuda_binding({"cuda-python": None, "pycuda": NO_PYCUDA}, prefer="pycuda")
    msg = str(err.value)
    assert "pycuda" in msg and NO_PYCUDA in msg
    with pytest.raises(MissingDependencyError, match=r"medfuse\[tensorrt\]"):
        choose_cuda_binding({"cuda-python": NO_CUDA_PYTHON, "pycuda": None},
                            prefer="cuda-python")


def test_neither_binding_names_both_and_how_to_install() -> None:
    with pytest.raises(MissingDependencyError) as err:
        choose_cuda_binding({"cuda-python": NO_CUDA_PYTHON, "pycuda": NO_PYCUDA})
    msg = str(err.value)
    assert "cuda-python" in msg and "pycuda" in msg
    assert "pip install 'medfuse[tensorrt]'" in msg
    assert "Jetson" in msg or "JetPack" in msg
    assert NO_CUDA_PYTHON in msg and NO_PYCUDA in msg


@pytest.mark.parametrize("bad", ["cupy", "pycuda2", "CUDA-PYTHON", ""])
def test_unknown_binding_is_a_usage_error(bad: str) -> None:
    for call in (open_cuda_memory, select_cuda_binding):
        with pytest.raises(UsageError) as err:
            call(bad)
        assert repr(bad) in str(err.value) and "cuda-python, pycuda" in str(err.value)
    with pytest.raises(UsageError):
        choose_cuda_binding(BOTH, prefer=bad)


# -- real import failures, in a fresh interpreter -----------------------------------------------


@pytest.fixture(scope="module")
def neither() -> dict[str, Any]:
    return _run_blocked(["cuda-python", "pycuda"], """
import medfuse.runtime.cuda_memory as cm
import medfuse.runtime.cuda_binding_cudapython, medfuse.runtime.cuda_binding_pycuda
from medfuse.runtime.backends import tensorrt
out["imported"] = sorted(m for m in sys.modules
                         if m.split(".")[0] in ("cuda", "pycuda") and sys.modules[m] is not None)
for prefer in (None, "pycuda", "cuda-python"):
    try:
        cm.open_cuda_memory(prefer)
        out[str(prefer)] = None
    except Exception as exc:
        out[str(prefer)] = [type(exc).__name__, str(exc), type(exc.__cause__).__name__]
""")


def test_no_binding_is_imported_until_memory_is_opened(neither: dict[str, Any]) -> None:
    assert neither["imported"] == []


def test_open_without_any_binding_says_what_to_install(neither: dict[str, Any]) -> None:
    kind, msg, cause = neither["None"]
    assert kind == "MissingDependencyError" and cause == "ModuleNotFoundError"
    assert "cuda-python" in msg and "pycuda" in msg and "pip install 'medfuse[tensorrt]'" in msg


def test_open_asked_binding_missing_names_only_that_one(neither: dict[str, Any]) -> None:
    kind, msg, cause = neither["pycuda"]
    assert kind == "MissingDependencyError" and cause == "ModuleNotFoundError"
    assert msg.startswith("the pycuda CUDA binding was asked for")
    kind, msg, _ = neither["cuda-python"]
    assert kind == "MissingDependencyError" and "medfuse[tensorrt]" in msg


@pytest.mark.skipif(not _has("cuda"), reason="cuda-python is not installed")
def test_select_takes_cuda_python_when_it_imports() -> None:
    out = _run_blocked(["pycuda"], """
from medfuse.runtime.cuda_memory import select_cuda_binding
out["choice"] = select_cuda_binding()
""")
    assert out["choice"] == "cuda-python"


@pytest.mark.skipif(not _has("pycuda"), reason="pycuda is not installed")
def test_select_falls_back_to_pycuda_when_cuda_python_is_blocked() -> None:
    out = _run_blocked(["cuda-python"], """
from medfuse.runtime.cuda_memory import select_cuda_binding
out["choice"] = select_cuda_binding()
""")
    assert out["choice"] == "pycuda"


# -- both implementations have the interface's shape --------------------------------------------


def _protocol_methods() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(CudaMemory).items()
            if inspect.isfunction(fn) and not name.startswith("_")}


def test_interface_lists_every_call_the_backend_makes() -> None:
    assert set(_protocol_methods()) == {
        "host_alloc", "free_host", "device_alloc", "free_device", "copy_to_device",
        "copy_to_host", "stream_create", "stream_handle", "stream_sync", "stream_destroy",
        "event_create", "event_record", "event_elapsed_ms", "event_destroy", "begin_capture",
        "end_capture", "instantiate", "launch", "graph_destroy", "close",
    }
    assert set(CudaMemory.__annotations__) == {"binding", "memcpy_count"}


@pytest.mark.parametrize(("impl", "name"), [(CudaPythonMemory, "cuda-python"),
                                            (PyCudaMemory, "pycuda")])
def test_implementation_matches_interface(impl: type, name: str) -> None:
    for method, expected in _protocol_methods().items():
        got = getattr(impl, method, None)
        assert inspect.isfunction(got), f"{impl.__name__} lacks {method}"
        assert inspect.signature(got) == expected, f"{impl.__name__}.{method}"
    public = {n for n, v in vars(impl).items() if inspect.isfunction(v) and not n.startswith("_")}
    assert public == set(_protocol_methods()), "no extra public calls outside the interface"
    assert impl.binding == name  # type: ignore[attr-defined]
    assert impl.__annotations__["memcpy_count"] == "int"
    assert name in CUDA_BINDINGS
