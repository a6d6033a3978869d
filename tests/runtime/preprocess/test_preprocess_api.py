"""``medfuse.runtime.preprocess.__all__`` lists exactly its public names."""

from __future__ import annotations

import inspect

import medfuse.runtime.preprocess as pre


def test_dunder_all_is_complete_and_resolvable() -> None:
    public = {
        n
        for n, v in vars(pre).items()
        if not n.startswith("_") and not inspect.ismodule(v) and n != "annotations"
    }
    assert public == set(pre.__all__)
    for name in pre.__all__:
        assert getattr(pre, name).__module__.startswith("medfuse.runtime.preprocess.")
