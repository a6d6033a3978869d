"""``medfuse inspect [BUNDLE] [--json]``: show a bundle's manifest, after checking its files.

Without ``BUNDLE`` the reference bundle shipped with medfuse is shown. Every artifact's sha256 is
checked first (``--no-verify`` skips it); a damaged bundle, or a signature that does not verify,
is an error (exit 1). The bundle's sha256 (what ``--expect-sha256`` pins) and its signature state
are shown plainly: ``unsigned``, the signer's key id (and whether the trust policy trusts it), or
``INVALID``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medfuse.bundle import Bundle, open_bundle, reference_bundle_path
from medfuse.bundle.spec import InputSpec
from medfuse.cli.options import add_trust_options
from medfuse.errors import IntegrityError

__all__ = ["configure", "run", "summary"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``inspect`` arguments."""
    add_trust_options(parser)
    parser.add_argument(
        "bundle",
        nargs="?",
        type=Path,
        default=None,
        help="a NAME.medfuse directory or a zip of one (default: the shipped reference bundle)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="do not check the artifacts' sha256 (show a damaged bundle's manifest)",
    )


def _size(bundle: Bundle, rel: str) -> int | None:
    path = bundle.path / rel
    return path.stat().st_size if path.is_file() else None


def summary(bundle: Bundle, *, verified: bool | None = None) -> dict[str, Any]:
    """The JSON summary of a bundle that ``inspect --json`` prints.

    Keys: ``path``, ``name``, ``version``, ``description``, ``schema_version``, ``sha256``,
    ``zip_sha256`` (a zip's own digest, else ``null``), ``signature`` (``status``, ``key_ids``,
    ``signed_at``, ``trusted``, ``detail``), ``inputs``, ``outputs``, ``variants``, ``engines``,
    ``artifacts``, ``provenance``, ``golden`` (``source``, ``rows``, ``reference``,
    ``written_by``, ``random``, ``warning``), ``verified``.
    """
    m = bundle.manifest
    variants = {}
    for p, v in m.variants.items():
        variants[p] = {"precision": p, **v.to_dict(), "size_bytes": _size(bundle, v.file)}
    return {
        "path": str(bundle.source.resolve()),
        "name": m.model.name,
        "version": m.model.version,
        "description": m.model.description,
        "schema_version": m.schema_version,
        "sha256": bundle.digest,
        "zip_sha256": bundle.archive_sha256,
        "signature": None if bundle.signature is None else bundle.signature.to_dict(),
        "inputs": [i.to_dict() for i in m.model.inputs],
        "outputs": [o.to_dict() for o in m.model.outputs],
        "variants": variants,
        "engines": {k: {"key": k, **e.to_dict()} for k, e in m.engines.items()},
        "artifacts": dict(sorted(m.artifacts.items())),
        "provenance": m.provenance.to_dict(),
        "golden": golden_summary(bundle),
        "verified": verified,
    }


def golden_summary(bundle: Bundle) -> dict[str, Any]:
    """Where the golden vectors came from, with a warning when they are random or unknown."""
    m = bundle.manifest
    source = m.golden_source
    rec = m.golden.to_dict() if m.golden is not None else {}
    random = "random" in source.split("+")
    warning = None
    if random:
        warning = (
            "golden vectors are random N(0, 1) inputs, not studies: `validate` on them says "
            "little about INT8 variants; re-export with --golden-studies DIR or run "
            "`medfuse quantize` (it refreshes them from its calibration studies)"
        )
    elif source == "unknown":
        warning = "the bundle does not record where its golden vectors came from"
    count = m.golden.count if m.golden is not None else None
    return {"source": source, **rec, "count": count, "random": random, "warning": warning}


def _recipe(spec: InputSpec) -> str:
    pre = spec.preprocessing
    if spec.scalar is not None:
        sc = spec.scalar
        return (
            f"{sc.source} ({sc.parse}), (x − {sc.offset:g}) / {sc.scale:g}, default {sc.default:g}"
        )
    if pre is None:
        return "presence mask" if spec.role == "presence" else "-"
    size = "×".join(str(s) for s in pre.size)
    inten = pre.intensity
    if inten.method == "windows":
        how = "windows " + ", ".join(f"{w.center:g}/{w.width:g}" for w in inten.windows)
    elif inten.method == "percentile":
        how = f"percentile {inten.percentiles[0]:g}–{inten.percentiles[1]:g}"
    else:
        how = inten.method
    mods = "/".join(pre.selection.modalities)
    copies = f", ×{pre.replicate} channels" if pre.replicate != 1 else ""
    return f"{mods} {pre.geometry} {size}, {how}{copies} ({pre.selection.rule})"


def _shape(shape: tuple[int | str, ...]) -> str:
    return "×".join(str(s) for s in shape)


def _bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    size = float(n)
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def _print_table(bundle: Bundle, verified: bool | None) -> None:
    from medfuse.bundle.gate_figures import gate_figures
    from medfuse.cli.tables import Column, render_table, terminal_width

    m = bundle.manifest
    width = terminal_width()
    state = {True: "all files verified", False: "DAMAGED", None: "not verified"}[verified]
    lines = [
        f"{m.model.name} {m.model.version} (schema {m.schema_version}, {state})",
        f"path: {bundle.source.resolve()}",
    ]
    if m.model.description:
        lines.append(m.model.description)
    if bundle.signature is not None:
        lines.append(f"signature: {bundle.signature.describe()}")
    lines.append(f"sha256: {bundle.digest}")
    if bundle.archive_sha256:
        lines.append(f"zip sha256: {bundle.archive_sha256}")
    out = "".join(_wrapped(line, width) for line in lines)

    out += "\n" + render_table(
        (
            Column("name", key=True),
            Column("role"),
            Column("modality", "mod", "modality"),
            Column("shape"),
            Column("dtype"),
            Column("required", "req", "required"),
        ),
        [
            [
                i.name,
                i.role,
                i.modality or "-",
                _shape(i.shape),
                i.dtype,
                "yes" if i.required else "no",
            ]
            for i in m.model.inputs
        ],
        title="inputs",
    )
    out += "".join(_wrapped(f"  {i.name}: {_recipe(i)}", width) for i in m.model.inputs)
    out += "\n" + render_table(
        (
            Column("name", key=True),
            Column("kind"),
            Column("shape"),
            Column("activation", "act", "activation"),
            Column("labels", wrap=True),
            Column("meaning", wrap=True),
        ),
        [
            [o.name, o.kind, _shape(o.shape), o.activation, ", ".join(o.labels) or "-", o.meaning]
            for o in m.model.outputs
        ],
        title="outputs",
    )
    out += "\n" + render_table(
        (
            Column("precision", key=True),
            Column("file", drop=1),
            Column("size", right=True),
            Column("sha256", drop=2),
            Column("accuracy (vs fp32 for quantized variants)", "accuracy", wrap=True),
        ),
        [
            [
                p,
                v.file,
                "missing" if (size := _size(bundle, v.file)) is None else _bytes(size),
                v.sha256[:12],
                gate_figures(p, v.accuracy).compact(),
            ]
            for p, v in m.variants.items()
        ],
        title="variants (full records: --json)",
    )
    if m.engines:
        out += "\n" + render_table(
            (
                Column("key", key=True),
                Column("variant", key=True),
                Column("TensorRT", "TRT", "TensorRT"),
                Column("GPU", wrap=True),
                Column("CC"),
                Column("DLA", drop=1),
                Column("built", drop=2),
            ),
            [
                [
                    k,
                    e.variant,
                    e.tensorrt_version,
                    e.gpu_name,
                    e.compute_capability,
                    "-" if e.dla_core is None else str(e.dla_core),
                    e.built_at,
                ]
                for k, e in m.engines.items()
            ],
            title="engines",
        )
    else:
        out += _wrapped(
            "engines: none built yet (`medfuse build` makes one for this device)", width
        )

    golden = golden_summary(bundle)
    rows = ", ".join(f"{n} {s}" for s, n in golden.get("rows", {}).items()) or golden["source"]
    out += _wrapped(
        f"golden vectors: {rows}"
        + (f" (outputs from {golden['reference']})" if golden.get("reference") else ""),
        width,
    )
    if golden["warning"]:
        out += _wrapped(f"warning: {golden['warning']}", width)
    prov = m.provenance
    out += _wrapped(
        f"provenance: medfuse {prov.medfuse_version}, created {prov.created_at}, "
        f"torch {prov.torch_version or '-'}, onnx {prov.onnx_version or '-'}, "
        f"opset {prov.opset or '-'}, training config {(prov.training_config_hash or '-')[:12]}",
        width,
    )
    sys.stdout.write(out)


def _wrapped(text: str, width: int) -> str:
    """``text`` wrapped at ``width`` (long tokens such as paths and digests kept whole)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=False) or [""]) + "\n"


def run(args: argparse.Namespace) -> int:
    """Show the bundle; exit 1 (via :class:`IntegrityError`) when its files are damaged."""
    path = args.bundle if args.bundle is not None else reference_bundle_path()
    bundle = open_bundle(path)
    verified: bool | None = None
    if args.verify:
        report = bundle.verify()
        if not report.ok:
            details = "; ".join(p.message for p in report.problems)
            raise IntegrityError(
                f"bundle {bundle.label} failed verification ({len(report.problems)} problem(s)): "
                f"{details} (--no-verify shows its manifest anyway)"
            )
        verified = True
    if args.json:
        json.dump(summary(bundle, verified=verified), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _print_table(bundle, verified)
    return 0
