"""One option layer: the session options are declared once and parsed by one parser per type."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from medfuse.cli.main import _parser
from medfuse.cli.options import BACKEND_NAMES, batch_list, names, positive_int
from medfuse.errors import UsageError
from medfuse.runtime.backends.select import BACKENDS
from medfuse.runtime.batch_sizes import parse_batch_sizes

SESSION_VERBS = ("run", "serve", "validate", "bench")


def _sub(verb: str) -> argparse.ArgumentParser:
    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = action.choices[verb]
    return parser


def test_backend_names_match_the_runtime() -> None:
    assert BACKEND_NAMES == BACKENDS


@pytest.mark.parametrize("verb", SESSION_VERBS)
def test_every_session_verb_has_the_one_group(verb: str) -> None:
    groups = {g.title: g for g in _sub(verb)._action_groups}
    assert "model session" in groups
    flags = {s for a in groups["model session"]._group_actions for s in a.option_strings}
    assert {"--backend", "--device", "--threads"} <= flags
    assert {"--precision", "--variant"} <= flags


@pytest.mark.parametrize("bad", ["0", "-2", "x", "1,,4", ""])
def test_one_batch_parser_refuses_zero_negatives_and_junk(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_batch_sizes(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        batch_list(bad)


def test_batch_parsers_agree() -> None:
    from medfuse.devices.plan import parse_batch_sizes as plan_parse
    from medfuse.serving.server import parse_batch_sizes as serve_parse

    assert parse_batch_sizes("1, 4,8") == plan_parse("1,4,8") == serve_parse("1,4,8") == (1, 4, 8)
    assert serve_parse("") == ()
    for parse in (plan_parse, serve_parse):
        with pytest.raises(UsageError):
            parse("0")
        with pytest.raises(UsageError):
            parse("-4,8")


def test_lists_are_comma_or_repeated() -> None:
    args = _sub("bench").parse_args(["--backend", "onnxruntime", "--variant", "fp32,int8",
                                     "--precision", "fp16"])  # fmt: skip
    assert names(args.backends) == ("onnxruntime",)
    assert names(args.variants) == ("fp32", "int8", "fp16")
    assert args.batch == (1,)
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int("0")


@pytest.mark.parametrize(
    ("verb", "args"),
    [
        ("run", ["x", "--out", "y", "--batch", "0"]),
        ("run", ["x", "--out", "y", "--threads", "-1"]),
        ("serve", ["--device", "tpu"]),
        ("validate", ["--threads", "0"]),
        ("bench", ["--batch", "1,0"]),
    ],
)
def test_bad_session_values_exit_2_naming_the_option(verb: str, args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", verb, *args],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    flag = next(a for a in args if a.startswith("--") and a != "--out")
    assert f"argument {flag}" in proc.stderr
