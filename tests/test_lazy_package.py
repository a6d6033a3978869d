"""The top-level package is lazy (PEP 562): importing the error tree loads no runtime module,
and no import order breaks it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import medfuse


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_importing_the_error_tree_loads_no_runtime_module() -> None:
    code = (
        "import json, sys\n"
        "import medfuse.errors\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('medfuse'))))\n"
    )
    assert json.loads(_run(code)) == ["medfuse", "medfuse.errors"]


@pytest.mark.parametrize(
    "first",
    [
        "import medfuse.bundle.manifest",
        "from medfuse.runtime.session import Session",
        "import medfuse.cli.main",
        "from medfuse import Session",
        "import medfuse.errors",
    ],
)
def test_import_order_carries_no_weight(first: str) -> None:
    code = (
        f"{first}\n"
        "import medfuse\n"
        "from medfuse import Session, reference_bundle, __version__, MedfuseError\n"
        "from medfuse.runtime.session import Session as S2\n"
        "assert Session is S2 and callable(reference_bundle) and __version__\n"
        "print('ok')\n"
    )
    assert _run(code).strip() == "ok"


def test_every_name_in_all_resolves_and_is_listed_by_dir() -> None:
    for name in medfuse.__all__:
        assert getattr(medfuse, name) is not None
    assert set(medfuse.__all__) <= set(dir(medfuse))


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Sesion'"):
        medfuse.Sesion  # noqa: B018
