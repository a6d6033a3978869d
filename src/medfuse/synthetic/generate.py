"""A cohort of synthetic multimodal studies on disk, with labels kept apart from the images.

Layout of ``out``::

    out/
      .medfuse-synth.json      marker: what this generator wrote (lets a re-run replace it)
      labels.key               the HMAC secret of the study keys (reused if present)
      labels.csv               study,diagnosis,severity,modalities  (study = pseudonymous key)
      <hex>/<hex>/<hex>/<files>  patient / study / series folders, random names, some non-DICOM

Randomness comes from separate streams per patient (``[seed, stream, patient]``), so each
patient is the same whatever the cohort size, and the same seed writes the same files.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
)

from medfuse.errors import UsageError
from medfuse.runtime.results.keys import load_or_create_secret, study_key
from medfuse.synthetic.anatomy import DIAGNOSES
from medfuse.synthetic.dicom_base import Equipment, SeriesContext, UidSource
from medfuse.synthetic.identity import Identity, draw_identity
from medfuse.synthetic.phantom import PatientPhantom, Rendered, make_patient
from medfuse.synthetic.writers import write_ct, write_mr, write_xr

__all__ = ["KEY_FILE", "LABELS_CSV", "MARKER", "SynthSummary", "generate_studies"]

log = logging.getLogger(__name__)

MARKER = ".medfuse-synth.json"
LABELS_CSV = "labels.csv"
KEY_FILE = "labels.key"
_STREAM_PATIENT, _STREAM_CLASSES, _STREAM_IDENTITY = 1, 2, 3

_SCANNERS = {
    "CT": (("SIEMENS", "SOMATOM Definition AS"), ("GE MEDICAL SYSTEMS", "Revolution CT"), ("Philips", "iCT 256"), ("TOSHIBA", "Aquilion ONE")),
    "MR": (("SIEMENS", "MAGNETOM Skyra"), ("GE MEDICAL SYSTEMS", "SIGNA Premier"), ("Philips", "Ingenia")),
    "CR": (("FUJIFILM Corporation", "FCR PROFECT"), ("Carestream Health", "DirectView CR 975")),
    "DX": (("SIEMENS", "Ysio Max"), ("Philips", "DigitalDiagnost"), ("GE Healthcare", "Definium 8000")),
}  # fmt: skip


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate_studies` wrote: counts, not contents (no PHI)."""

    out: Path
    patients: int
    seed: int
    per_class: dict[str, int] = field(default_factory=dict)
    per_modality: dict[str, int] = field(default_factory=dict)
    series: int = 0
    files_written: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``out`` as a string)."""
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def _check_out(out: Path) -> None:
    """Make ``out`` ready: new, empty, only a key file, or a previous synth output (replaced)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a new or empty folder")
    if not out.exists():
        out.mkdir(parents=True)
        return
    entries = {p.name for p in out.iterdir()}
    if entries <= {KEY_FILE}:
        return
    if MARKER not in entries:
        raise UsageError(
            f"refusing to write into {out}: it is not empty and not a previous `medfuse synth` "
            f"output (no {MARKER}); give a new or empty folder"
        )
    try:
        previous = json.loads((out / MARKER).read_text(encoding="utf-8"))
        names = [str(n) for n in previous.get("entries", [])]
    except (OSError, ValueError, AttributeError) as exc:
        raise UsageError(
            f"{out / MARKER} is unreadable; delete {out} or give another folder"
        ) from exc
    for name in [*names, LABELS_CSV, MARKER]:
        if not name or Path(name).name != name or name in {".", ".."}:
            continue  # never follow a path out of ``out``
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def _classes(seed: int, patients: int) -> list[str]:
    """Balanced classes: every block of four patients holds each class once, in random order."""
    out: list[str] = []
    for block in range((patients + 3) // 4):
        rng = np.random.default_rng([seed, _STREAM_CLASSES, block])
        out.extend(DIAGNOSES[int(i)] for i in rng.permutation(len(DIAGNOSES)))
    return out[:patients]


def _present(rng: np.random.Generator) -> tuple[str, ...]:
    """Modalities acquired: ~5% miss CT, ~15% miss MR, ~15% miss X-ray, never all."""
    u = rng.random(3)
    present = tuple(
        m for m, p, x in zip(("CT", "MR", "XR"), (0.05, 0.15, 0.15), u, strict=True) if x >= p
    )
    return present or ("CT",)


def _write_patient(
    out: Path,
    folder: str,
    phantom: PatientPhantom,
    ident: Identity,
    uids: UidSource,
    rng: np.random.Generator,
) -> tuple[int, int, str]:
    """Write one patient's study; returns (files, series, XR modality or '')."""
    study = out / folder / rng.bytes(4).hex()
    study.mkdir(parents=True)
    if rng.random() < 0.3:
        (study / "notes.txt").write_text(
            "exported for research QA; see PACS for originals\n", encoding="utf-8"
        )
    study_uid = uids("study")
    files = series = 0
    xr_kind = ""
    plan: list[tuple[str, Rendered | None, int, str]] = [
        ("CT", phantom.ct, 2, "AX ABD 5mm"),
        ("MR", phantom.mr, 5, "T2 TSE AX"),
        ("DX" if rng.random() < 0.5 else "CR", phantom.xr, 1, "AP ABDOMEN"),
    ]
    sop = {
        "CT": CTImageStorage,
        "MR": MRImageStorage,
        "CR": ComputedRadiographyImageStorage,
        "DX": DigitalXRayImageStorageForPresentation,
    }
    for modality, rendered, number, description in plan:
        if rendered is None:
            continue
        maker, model = _SCANNERS[modality][int(rng.integers(len(_SCANNERS[modality])))]
        syntax = rng.choice(
            [str(RLELossless), str(ImplicitVRLittleEndian), str(ExplicitVRLittleEndian)],
            p=[0.25, 0.1, 0.65],
        )
        st = ident.study_time
        t = min(
            int(st[:2]) * 3600 + int(st[2:4]) * 60 + int(st[4:6]) + 60 * int(rng.integers(1, 40)),
            86399,
        )
        ctx = SeriesContext(
            identity=ident,
            study_uid=study_uid,
            series_uid=uids(modality, "series"),
            frame_of_reference_uid=uids(modality, "frame") if modality in {"CT", "MR"} else None,
            sop_class_uid=sop[modality],
            modality=modality,
            series_number=number,
            series_description=description,
            equipment=Equipment(
                maker,
                model,
                f"{maker.split()[0][:6].upper()}{int(rng.integers(10, 99))}",
                str(int(rng.integers(10**4, 10**6))),
                f"VA{int(rng.integers(10, 60))}",
            ),
            series_time=f"{t // 3600:02d}{t % 3600 // 60:02d}{t % 60:02d}",
            transfer_syntax=str(syntax),
        )
        folder_path = study / rng.bytes(4).hex()
        folder_path.mkdir()
        writer = {"CT": write_ct, "MR": write_mr}.get(modality, write_xr)
        files += writer(rendered, ctx, uids, rng, folder_path)
        series += 1
        if modality in {"CR", "DX"}:
            xr_kind = modality
        if rng.random() < 0.15:
            (folder_path / "thumbs.db").write_bytes(rng.bytes(int(rng.integers(64, 512))))
    return files, series, xr_kind


def generate_studies(
    out: Path,
    patients: int,
    *,
    seed: int = 0,
    phi_folder_names: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write ``patients`` synthetic multimodal studies as DICOM under ``out``, and their labels.

    Parameters
    ----------
    out
        A new or empty folder, or one a previous call wrote (its content is replaced; its
        ``labels.key`` is kept). Anything else is refused with :class:`UsageError`.
    patients
        Number of patients, one study each (≥ 1).
    seed
        Non-negative seed; the same seed writes the same images, UIDs and labels.
    phi_folder_names
        Name each patient folder ``FAMILY^GIVEN_MRN`` (PHI in paths, for privacy tests) instead
        of a random hex name.
    progress
        Called with the number of patients done after each patient.

    Returns
    -------
    SynthSummary
        Counts per class and modality, files written, wall time.
    """
    if isinstance(patients, bool) or not isinstance(patients, int) or patients < 1:
        raise UsageError(f"patients must be a positive integer, got {patients!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    start = time.perf_counter()
    out = Path(out)
    _check_out(out)
    secret = load_or_create_secret(out / KEY_FILE)
    classes = _classes(seed, patients)
    identities = [
        draw_identity(np.random.default_rng([seed, _STREAM_IDENTITY, i])) for i in range(patients)
    ]
    folders = [
        ident.folder_name
        if phi_folder_names
        else np.random.default_rng([seed, _STREAM_IDENTITY, i, 1]).bytes(5).hex()
        for i, ident in enumerate(identities)
    ]
    if len(set(folders)) != len(folders):  # PHI names can collide in big cohorts
        folders = [f"{name}_{i}" for i, name in enumerate(folders)]
    marker = {
        "generator": "medfuse.synthetic",
        "version": 1,
        "seed": seed,
        "patients": patients,
        "entries": folders,
    }
    (out / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")

    per_class = dict.fromkeys(DIAGNOSES, 0)
    per_modality = {"CT": 0, "MR": 0, "XR": 0, "CR": 0, "DX": 0}
    rows: list[tuple[str, str, str, str]] = []
    files = series = 0
    for i in range(patients):
        rng = np.random.default_rng([seed, _STREAM_PATIENT, i])
        present = _present(rng)
        phantom = make_patient(rng, i, diagnosis=classes[i], modalities=present)
        uids = UidSource(seed, i)
        n_files, n_series, xr_kind = _write_patient(
            out, folders[i], phantom, identities[i], uids, rng
        )
        files += n_files
        series += n_series
        per_class[phantom.diagnosis] += 1
        for m in present:
            per_modality[m] += 1
        if xr_kind:
            per_modality[xr_kind] += 1
        key = study_key(uids("study"), secret)
        rows.append((key, phantom.diagnosis, f"{phantom.severity_ml:.3f}", "+".join(present)))
        if progress is not None:
            progress(i + 1)
    with (out / LABELS_CSV).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["study", "diagnosis", "severity", "modalities"])
        writer.writerows(rows)
    seconds = time.perf_counter() - start
    log.info(
        "synthetic cohort: %d patients, %d series, %d files in %.2f s",
        patients,
        series,
        files,
        seconds,
    )
    return SynthSummary(
        out, patients, seed, per_class, per_modality, series, files, round(seconds, 3)
    )
