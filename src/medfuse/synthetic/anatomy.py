"""The analytic patient: body, organs, bone, air and lesions as painted shapes with tissue values.

Each :class:`Tissue` carries its CT number (HU), its signal on the T2-like MR contrast, and a
texture strength. Lesions are drawn per diagnosis class so that each class is recognisable on
every modality at low resolution (see :data:`DIAGNOSES` and the module docstring of
:mod:`medfuse.synthetic.phantom`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medfuse.synthetic.geometry import Grid, Shape, paint

__all__ = ["DIAGNOSES", "Anatomy", "Lesion", "Tissue", "draw_anatomy", "draw_lesions"]

DIAGNOSES: tuple[str, ...] = ("normal", "cyst", "tumor", "calcification")


@dataclass(frozen=True)
class Tissue:
    """One painted structure: its shape and what each modality sees in it."""

    shape: Shape
    hu: float
    mr: float
    texture: float = 0.0  # extra CT noise (HU) inside; MR texture scales with it
    lesion: int = 0  # 1-based lesion number, 0 for anatomy


@dataclass(frozen=True)
class Lesion:
    """One lesion (a tumour is several overlapping lobules): class, place, size and values."""

    kind: str
    centre: tuple[float, float, float]
    radius_mm: float
    volume_ml: float
    hu: float
    mr: float


@dataclass(frozen=True)
class Anatomy:
    """The body's outline and landmarks, used to place lesions and choose fields of view."""

    tissues: tuple[Tissue, ...]
    body_axes: tuple[float, float]  # semi-axes (x, y) of the body outline, mm
    inner_axes: tuple[float, float]  # semi-axes of the fat-free interior, mm
    spine: tuple[float, float, float]  # centre x, y and radius of the vertebral bodies


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """A random abdomen: fat, muscle, liver, spleen, kidneys, vessels, spine, lung bases, gas."""
    a, b = _u(rng, 115, 145), _u(rng, 80, 108)
    fat = _u(rng, 8, 24)
    ia, ib = a - fat, b - 0.8 * fat
    t: list[Tissue] = [
        Tissue(
            Shape((0, 0, 0), (a, b, 1), cylinder=True), _u(rng, -115, -85), _u(rng, 850, 950), 4
        ),
        Tissue(Shape((0, 0, 0), (ia, ib, 1), cylinder=True), _u(rng, 35, 45), _u(rng, 300, 360), 3),
    ]
    zl = _u(rng, 150, 190)  # lung centres; their bases reach down to about z = 40..80
    for side in (-1, 1):
        t.append(
            Tissue(Shape((side * 0.48 * ia, 0.05 * ib, zl), (0.42 * ia, 0.8 * ib, 110)), -850, 25)
        )
    liver = Shape(
        (-0.36 * ia, -0.05 * ib, _u(rng, -10, 20)),
        (0.5 * ia, 0.62 * ib, _u(rng, 70, 95)),
        angle=_u(rng, -0.3, 0.3),
    )
    t.append(Tissue(liver, _u(rng, 52, 62), _u(rng, 220, 280), 3))
    spleen = Shape((0.55 * ia, 0.25 * ib, _u(rng, 0, 30)), (0.22 * ia, 0.3 * ib, 45), angle=-0.5)
    t.append(Tissue(spleen, _u(rng, 42, 50), _u(rng, 520, 600), 3))
    for side in (-1, 1):
        kidney = Shape(
            (side * 0.38 * ia, 0.45 * ib, _u(rng, -45, -15)), (26, 20, 50), angle=side * 0.4
        )
        t.append(Tissue(kidney, _u(rng, 30, 38), _u(rng, 600, 680), 3))
    sr = _u(rng, 16, 21)
    sy = ib - sr - _u(rng, 18, 28)
    t.append(
        Tissue(
            Shape((0.06 * ia, sy - sr - 14, 0), (_u(rng, 10, 13),) * 2 + (1,), cylinder=True),
            45,
            70,
        )
    )
    t.append(Tissue(Shape((-0.1 * ia, sy - sr - 12, 0), (12, 9, 1), cylinder=True), 42, 90))
    t.append(Tissue(Shape((0, sy, 0), (sr, sr * 0.85, 1), cylinder=True), _u(rng, 650, 800), 40))
    t.append(
        Tissue(
            Shape((0, sy, 0), (sr - 3, sr * 0.85 - 3, 1), cylinder=True), _u(rng, 200, 300), 450, 15
        )
    )
    t.append(Tissue(Shape((0, sy + sr + 16, 0), (6, 14, 1), cylinder=True), _u(rng, 450, 600), 60))
    pitch, z0 = _u(rng, 28, 34), _u(rng, 0, 30)
    for k in range(-8, 9):
        disc = Shape(
            (0, sy, z0 + k * pitch),
            (sr - 1, sr * 0.85 - 1, 1),
            cylinder=True,
            half_height=_u(rng, 3, 4.5),
        )
        t.append(Tissue(disc, 85, 900))
    for _ in range(int(rng.integers(0, 3))):
        r = _u(rng, 6, 11)
        centre = (_u(rng, 0.1, 0.5) * ia, -_u(rng, 0.2, 0.6) * ib, _u(rng, -50, 50))
        t.append(Tissue(Shape(centre, (r, r * 0.8, r)), -950, 15))
    return Anatomy(tuple(t), (a, b), (ia, ib), (0.0, sy, sr))


def _vec3(v: np.ndarray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def _lobules(rng: np.random.Generator, centre: np.ndarray, r: float) -> list[Shape]:
    """An irregular, lobulated mass: a core with 2–5 overlapping lobules on its surface."""
    shapes = [
        Shape(
            _vec3(centre),
            (r, r * _u(rng, 0.8, 1.0), r * _u(rng, 0.8, 1.0)),
            angle=_u(rng, 0, math.pi),
        )
    ]
    for _ in range(int(rng.integers(2, 6))):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        lr = r * _u(rng, 0.4, 0.7)
        c = centre + d * r * _u(rng, 0.6, 0.95)
        shapes.append(Shape(_vec3(c), (lr, lr, lr)))
    return shapes


def _place(
    rng: np.random.Generator, anatomy: Anatomy, r: float, taken: list[tuple[np.ndarray, float]]
) -> np.ndarray:
    """A lesion centre inside the interior, clear of the spine, the table and other lesions."""
    ia, ib = anatomy.inner_axes
    sx, sy, sr = anatomy.spine
    best = np.array([-0.3 * ia, -0.2 * ib, 0.0])
    for _ in range(200):
        ang, rad = _u(rng, 0, 2 * math.pi), math.sqrt(_u(rng, 0, 1))
        c = np.array(
            [
                rad * math.cos(ang) * (ia - r - 15),
                rad * math.sin(ang) * (ib - r - 15),
                _u(rng, -28, 28),
            ]
        )
        if math.hypot(c[0] - sx, c[1] - sy) < sr + r + 18:
            continue
        if any(np.linalg.norm(c - p) < r + pr + 6 for p, pr in taken):
            continue
        return c
    return best


def _volume_ml(shapes: list[Shape]) -> float:
    """Volume of a union of shapes, counted on a 1 mm grid around them."""
    corners = np.concatenate([s.bounds() for s in shapes])
    lo, hi = np.floor(corners.min(axis=0)) - 1, np.ceil(corners.max(axis=0)) + 1
    size = (hi - lo + 1).astype(int)
    grid = Grid(
        origin=(float(lo[0]), float(lo[1]), float(lo[2])),
        row_dir=(1.0, 0.0, 0.0),
        col_dir=(0.0, 1.0, 0.0),
        normal=(0.0, 0.0, 1.0),
        spacing=(1.0, 1.0, 1.0),
        shape=(int(size[2]), int(size[1]), int(size[0])),
    )
    mask = paint(grid, shapes, [1] * len(shapes))
    return float(np.count_nonzero(mask)) / 1000.0


def draw_lesions(
    rng: np.random.Generator, anatomy: Anatomy, diagnosis: str
) -> tuple[tuple[Tissue, ...], tuple[Lesion, ...]]:
    """Lesion tissues (to paint last) and their descriptions for one diagnosis class."""
    if diagnosis == "normal":
        return (), ()
    count = {
        "cyst": int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])),
        "tumor": int(rng.choice([1, 2], p=[0.75, 0.25])),
        "calcification": int(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.2, 0.15])),
    }[diagnosis]
    tissues: list[Tissue] = []
    lesions: list[Lesion] = []
    taken: list[tuple[np.ndarray, float]] = []
    for n in range(1, count + 1):
        if diagnosis == "cyst":
            r = _u(rng, 9, 25)
            hu, mr, tex = _u(rng, 0, 20), _u(rng, 1300, 1700), 2.0
        elif diagnosis == "tumor":
            r = _u(rng, 10, 22)
            hu, mr, tex = _u(rng, 70, 110), _u(rng, 650, 820), 12.0
        else:
            r = _u(rng, 8, 13)
            hu, mr, tex = _u(rng, 300, 1000), _u(rng, 30, 90), 40.0
        extent = r * 1.6 if diagnosis == "tumor" else r
        centre = _place(rng, anatomy, extent, taken)
        taken.append((centre, extent))
        if diagnosis == "tumor":
            shapes = _lobules(rng, centre, r)
        else:
            axes = (r, r * _u(rng, 0.85, 1.15), r * _u(rng, 0.85, 1.15))
            shapes = [Shape(_vec3(centre), axes, angle=_u(rng, 0, math.pi))]
        tissues.extend(Tissue(s, hu, mr, tex, lesion=n) for s in shapes)
        lesions.append(Lesion(diagnosis, _vec3(centre), r, _volume_ml(shapes), hu, mr))
    return tuple(tissues), tuple(lesions)
