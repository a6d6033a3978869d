"""One synthetic patient: anatomy, lesions, label, and its CT / MR / X-ray images as arrays.

What makes each class recognisable (by design, at 32×64×64 CT, 24×64×64 MR, 128×128 X-ray):

=============  ==========================  ====================  =========================
class          CT                          MR (T2-like)          X-ray (projection of CT)
=============  ==========================  ====================  =========================
normal         no lesion                   no lesion             no lesion
cyst           round, fluid 0–20 HU        very bright           round darker area
tumor          lobulated, 70–110 HU        intermediate-bright   irregular denser area
calcification  dense foci 300–1000 HU      dark (signal void)    small very bright spots
=============  ==========================  ====================  =========================

The radiograph is the line integral of attenuation along anterior→posterior through the CT
phantom. Its attenuation law exaggerates soft-tissue contrast (as a low-kVp, heavily processed
image would), so fluid and enhancing masses show as well as calcium does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medfuse.errors import UsageError
from medfuse.synthetic.anatomy import DIAGNOSES, Lesion, Tissue, draw_anatomy, draw_lesions
from medfuse.synthetic.geometry import Grid, paint, rotation

__all__ = ["PatientPhantom", "Rendered", "make_patient"]

MU_WATER = 0.0195  # 1/mm, water at ~70 keV
SOFT_TISSUE_BOOST = 8.0  # extra attenuation contrast per HU in [-200, 200] (see module docstring)
_XR_RAY_STEP = 3.5  # mm between samples along each ray


@dataclass(frozen=True)
class Rendered:
    """One modality's image: its geometry, values and where lesions are.

    For CT ``values`` are HU and for MR arbitrary signal, both (slices, rows, columns); for the
    X-ray they are the attenuation line integral (rows, columns), and ``grid`` is the ray grid
    (axis 0 runs along the rays).
    """

    grid: Grid
    values: NDArray[np.float32]
    lesion_mask: NDArray[np.bool_]


@dataclass(frozen=True)
class PatientPhantom:
    """A patient: label, lesions, and a :class:`Rendered` image per modality present."""

    index: int
    diagnosis: str
    severity_ml: float
    lesions: tuple[Lesion, ...]
    ct: Rendered | None
    mr: Rendered | None
    xr: Rendered | None

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities present, in the order CT, MR, XR."""
        named = (("CT", self.ct), ("MR", self.mr), ("XR", self.xr))
        return tuple(name for name, img in named if img is not None)

    @property
    def label(self) -> int:
        """Index of :attr:`diagnosis` in :data:`DIAGNOSES`."""
        return DIAGNOSES.index(self.diagnosis)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _tables(tissues: tuple[Tissue, ...]) -> dict[str, NDArray[np.float32]]:
    """Per-label lookup tables; label 0 is air outside the body."""
    hu = np.array([-1000.0] + [t.hu for t in tissues], dtype=np.float32)
    soft = np.clip(hu, -200, 200) / 1000.0
    mu = MU_WATER * np.maximum(0.0, 1.0 + hu / 1000.0 + SOFT_TISSUE_BOOST * soft)
    return {
        "hu": hu,
        "mr": np.array([0.0] + [t.mr for t in tissues], dtype=np.float32),
        "tex": np.array([0.0] + [t.texture for t in tissues], dtype=np.float32),
        "lesion": np.array([False] + [t.lesion > 0 for t in tissues]),
        "mu": mu.astype(np.float32),
    }


def _ct_grid(rng: np.random.Generator, body: tuple[float, float]) -> Grid:
    slices = int(rng.integers(24, 49))
    thick = _u(rng, max(2.5, 130.0 / slices), 6.0)
    size = int(rng.choice([128, 144, 160, 176, 192]))
    fov = _u(rng, max(300.0, 2 * body[0] + 20), 380.0)
    feet_first = rng.random() < 0.3
    rot = rotation(0.0, math.pi, 0.0) if feet_first else np.eye(3)
    centre = (0.0, _u(rng, -10, 10), _u(rng, -10, 10))
    return Grid.from_rotation(centre, rot, (thick, fov / size, fov / size), (slices, size, size))


def _mr_grid(rng: np.random.Generator, body: tuple[float, float]) -> Grid:
    slices = int(rng.integers(16, 33))
    lo = max(3.0, 128.0 / slices)
    thick = _u(rng, lo, max(lo, 8.0))
    cols = int(rng.choice([96, 112, 128, 144, 160]))
    fov = _u(rng, max(320.0, 2 * body[0] + 20), 400.0)
    sp = fov / cols
    rows = max(cols - 16 * int(rng.integers(0, 3)), math.ceil((2 * body[1] + 30) / sp / 16) * 16)
    rows = min(max(rows, 96), 160)
    if rng.random() < 0.6:
        rot = rotation(_u(rng, -0.2, 0.2), _u(rng, -0.12, 0.12), _u(rng, -0.1, 0.1))
    else:
        rot = np.eye(3)
    centre = (_u(rng, -10, 10), _u(rng, -10, 10), _u(rng, -15, 15))
    return Grid.from_rotation(centre, rot, (thick, sp, sp), (slices, rows, cols))


def _xr_grid(rng: np.random.Generator, body: tuple[float, float]) -> Grid:
    cols, rows = int(rng.integers(192, 321)), int(rng.integers(192, 321))
    sp = _u(rng, 2 * body[0] + 40, 2 * body[0] + 120) / cols
    rays = math.ceil((2 * body[1] + 20) / _XR_RAY_STEP)
    # row direction +x (patient left), column direction -z (feet): a frontal view, head up
    rot = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    centre = (0.0, 0.0, _u(rng, -20, 40))
    return Grid.from_rotation(centre, rot, (_XR_RAY_STEP, sp, sp), (rays, rows, cols))


def _render_ct(
    rng: np.random.Generator,
    grid: Grid,
    tissues: tuple[Tissue, ...],
    tab: dict[str, NDArray[np.float32]],
) -> Rendered:
    labels = paint(grid, [t.shape for t in tissues], range(1, len(tissues) + 1))
    sigma = np.float32(_u(rng, 6, 16))
    noise = rng.standard_normal(grid.shape, dtype=np.float32)
    values = tab["hu"][labels] + (sigma + tab["tex"][labels]) * noise
    values[labels == 0] = -1000.0 + noise[labels == 0] * 4.0
    return Rendered(grid, values.astype(np.float32), tab["lesion"][labels])


def _render_mr(
    rng: np.random.Generator,
    grid: Grid,
    tissues: tuple[Tissue, ...],
    tab: dict[str, NDArray[np.float32]],
) -> Rendered:
    labels = paint(grid, [t.shape for t in tissues], range(1, len(tissues) + 1))
    _, r, c = grid.shape
    yy = np.linspace(-1, 1, r, dtype=np.float32)[None, :, None]
    xx = np.linspace(-1, 1, c, dtype=np.float32)[None, None, :]
    bias = 1.0 + _u(rng, -0.2, 0.2) * xx + _u(rng, -0.15, 0.15) * yy
    signal = (
        tab["mr"][labels]
        * bias
        * (
            1.0
            + 0.02 * tab["tex"][labels] / 10.0 * rng.standard_normal(grid.shape, dtype=np.float32)
        )
    )
    sigma = np.float32(_u(rng, 15, 40))
    n1 = rng.standard_normal(grid.shape, dtype=np.float32) * sigma
    n2 = rng.standard_normal(grid.shape, dtype=np.float32) * sigma
    values = np.sqrt((signal + n1) ** 2 + n2**2)  # magnitude image: Rician noise
    return Rendered(grid, values.astype(np.float32), tab["lesion"][labels])


def _render_xr(
    rng: np.random.Generator,
    grid: Grid,
    tissues: tuple[Tissue, ...],
    tab: dict[str, NDArray[np.float32]],
) -> Rendered:
    labels = paint(grid, [t.shape for t in tissues], range(1, len(tissues) + 1))
    line = tab["mu"][labels].sum(axis=0, dtype=np.float32) * np.float32(grid.spacing[0])
    # mild detector blur, then quantum noise
    blurred = line.copy()
    blurred[1:-1, 1:-1] = (
        line[1:-1, 1:-1] * 4 + line[:-2, 1:-1] + line[2:, 1:-1] + line[1:-1, :-2] + line[1:-1, 2:]
    ) / 8
    blurred += rng.standard_normal(blurred.shape, dtype=np.float32) * np.float32(
        _u(rng, 0.01, 0.03)
    )
    return Rendered(
        grid, np.maximum(blurred, 0).astype(np.float32), tab["lesion"][labels].any(axis=0)
    )


def make_patient(
    rng: np.random.Generator,
    index: int,
    *,
    diagnosis: str | None = None,
    modalities: tuple[str, ...] = ("CT", "MR", "XR"),
) -> PatientPhantom:
    """Draw one synthetic patient and render the requested modalities.

    Parameters
    ----------
    rng
        Source of all randomness; the same generator state gives the same patient.
    index
        The patient's number in its cohort (kept on the result, not used for drawing).
    diagnosis
        One of :data:`DIAGNOSES`, or ``None`` to draw it uniformly.
    modalities
        Which of ``"CT"``, ``"MR"``, ``"XR"`` to render; the others are ``None``. Geometry is
        drawn for all three either way, so the anatomy does not depend on this choice.

    Returns
    -------
    PatientPhantom
        Label (diagnosis, lesion burden in mL) and images as float32 arrays.
    """
    if diagnosis is None:
        diagnosis = DIAGNOSES[int(rng.integers(len(DIAGNOSES)))]
    elif diagnosis not in DIAGNOSES:
        raise UsageError(f"diagnosis {diagnosis!r} is not one of {DIAGNOSES}")
    anatomy = draw_anatomy(rng)
    lesion_tissues, lesions = draw_lesions(rng, anatomy, diagnosis)
    tissues = anatomy.tissues + lesion_tissues
    grids = (
        _ct_grid(rng, anatomy.body_axes),
        _mr_grid(rng, anatomy.body_axes),
        _xr_grid(rng, anatomy.body_axes),
    )
    tab = _tables(tissues)
    ct = _render_ct(rng, grids[0], tissues, tab) if "CT" in modalities else None
    mr = _render_mr(rng, grids[1], tissues, tab) if "MR" in modalities else None
    xr = _render_xr(rng, grids[2], tissues, tab) if "XR" in modalities else None
    severity = round(sum(les.volume_ml for les in lesions), 3)
    return PatientPhantom(index, diagnosis, severity, lesions, ct, mr, xr)
