"""Sampling grids in the patient frame and analytic shapes painted onto them.

Coordinates are DICOM patient coordinates (LPS, millimetres): +x towards the patient's left,
+y towards the posterior, +z towards the head. A :class:`Grid` is the geometry of one image
series (or of the ray grid of a radiograph); a :class:`Shape` is an ellipsoid or a z-bounded
elliptic cylinder, optionally rotated about z. :func:`paint` writes a label volume by painting
shapes in order, each one only inside its bounding box and with coordinates built from 1-D
axis terms, so axis-aligned grids cost a single full-size comparison per shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Grid", "Shape", "paint", "rotation"]

_EPS = 1e-9
Vec = tuple[float, float, float]


def rotation(rx: float, ry: float, rz: float) -> NDArray[np.float64]:
    """Rotation matrix for angles (radians) about x, then y, then z."""
    cx, sx = np.cos(rx), np.sin(rx)
    cy, sy = np.cos(ry), np.sin(ry)
    cz, sz = np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return np.asarray(mz @ my @ mx, dtype=np.float64)


@dataclass(frozen=True)
class Grid:
    """Voxel centres ``origin + k*ds*normal + r*dr*col_dir + c*dc*row_dir``.

    ``row_dir`` is the direction of increasing column index and ``col_dir`` that of increasing
    row index, as in ImageOrientationPatient (row direction first). ``spacing`` is
    ``(slice, row, column)`` spacing in mm: the row spacing is the distance between rows, as in
    PixelSpacing's first value. ``shape`` is ``(slices, rows, columns)``.
    """

    origin: Vec
    row_dir: Vec
    col_dir: Vec
    normal: Vec
    spacing: Vec
    shape: tuple[int, int, int]

    @staticmethod
    def from_rotation(
        centre: Sequence[float],
        rot: NDArray[np.float64],
        spacing: Sequence[float],
        shape: Sequence[int],
    ) -> Grid:
        """A grid centred on ``centre`` whose axes are the columns of ``rot`` (x, y, z)."""
        row = rot[:, 0]
        col = rot[:, 1]
        nrm = np.cross(row, col)
        ds, dr, dc = (float(v) for v in spacing)
        s, r, c = (int(v) for v in shape)
        origin = (
            np.asarray(centre, dtype=np.float64)
            - (s - 1) / 2 * ds * nrm
            - (r - 1) / 2 * dr * col
            - (c - 1) / 2 * dc * row
        )
        return Grid(
            origin=_vec(origin),
            row_dir=_vec(row),
            col_dir=_vec(col),
            normal=_vec(nrm),
            spacing=(ds, dr, dc),
            shape=(s, r, c),
        )

    def slice_position(self, k: int) -> Vec:
        """ImagePositionPatient of slice ``k`` (centre of its first voxel)."""
        p = np.asarray(self.origin) + k * self.spacing[0] * np.asarray(self.normal)
        return _vec(p)

    def index_of(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """Fractional (k, r, c) indices of world points of shape (n, 3)."""
        axes = np.stack([self.normal, self.col_dir, self.row_dir])  # (3, 3)
        rel = points - np.asarray(self.origin)
        return np.asarray(rel @ axes.T / np.asarray(self.spacing), dtype=np.float64)

    def world_axes(
        self, lo: Sequence[int], hi: Sequence[int]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """World x, y, z of the voxels in ``[lo, hi)``, each broadcastable to the box's shape."""
        idx = [
            np.arange(lo[a], hi[a], dtype=np.float32).reshape(
                [-1 if b == a else 1 for b in range(3)]
            )
            * np.float32(self.spacing[a])
            for a in range(3)
        ]
        dirs = (self.normal, self.col_dir, self.row_dir)
        out: list[NDArray[np.float32]] = []
        for j in range(3):
            term: NDArray[np.float32] = np.full((1, 1, 1), self.origin[j], dtype=np.float32)
            for a in range(3):
                w = dirs[a][j]
                if abs(w) > _EPS:
                    term = term + idx[a] * np.float32(w)
            out.append(term)
        return out[0], out[1], out[2]


@dataclass(frozen=True)
class Shape:
    """An ellipsoid, or an elliptic cylinder along z (``half_height`` bounds it; inf for none).

    ``axes`` are the semi-axes (a, b, c) in mm along the shape's own x, y, z; the shape is
    rotated by ``angle`` radians about z. For a cylinder ``c`` is ignored.
    """

    centre: Vec
    axes: Vec
    angle: float = 0.0
    cylinder: bool = False
    half_height: float = float("inf")

    def bounds(self) -> NDArray[np.float64]:
        """The 8 corners of a world-aligned box that contains the shape."""
        a, b, c = self.axes
        ca, sa = abs(np.cos(self.angle)), abs(np.sin(self.angle))
        ex = a * ca + b * sa
        ey = a * sa + b * ca
        ez = min(self.half_height, 1e5) if self.cylinder else c
        cx, cy, cz = self.centre
        return np.array(
            [
                [cx + sx * ex, cy + sy * ey, cz + sz * ez]
                for sx in (-1, 1)
                for sy in (-1, 1)
                for sz in (-1, 1)
            ]
        )

    def contains(
        self, x: NDArray[np.float32], y: NDArray[np.float32], z: NDArray[np.float32]
    ) -> NDArray[np.bool_]:
        """Whether each point lies inside the shape."""
        dx = x - np.float32(self.centre[0])
        dy = y - np.float32(self.centre[1])
        dz = z - np.float32(self.centre[2])
        a, b, c = self.axes
        if self.angle:
            co, si = np.float32(np.cos(self.angle)), np.float32(np.sin(self.angle))
            dx, dy = co * dx + si * dy, co * dy - si * dx
        q = (dx / np.float32(a)) ** 2 + (dy / np.float32(b)) ** 2
        if self.cylinder:
            inside = np.asarray(q <= 1.0)
            if np.isfinite(self.half_height):
                inside = inside & (np.abs(dz) <= np.float32(self.half_height))
            return inside
        return np.asarray(q + (dz / np.float32(c)) ** 2 <= 1.0)


def paint(
    grid: Grid, shapes: Sequence[Shape], labels: Sequence[int], dtype: type = np.uint8
) -> NDArray[np.integer]:
    """Label volume of ``grid``: 0 outside every shape, later shapes painted over earlier ones."""
    out: NDArray[np.integer] = np.zeros(grid.shape, dtype=dtype)
    shape_arr = np.asarray(grid.shape)
    for shape, label in zip(shapes, labels, strict=True):
        idx = grid.index_of(shape.bounds())
        lo = np.clip(np.floor(idx.min(axis=0)).astype(np.int64), 0, shape_arr)
        hi = np.clip(np.ceil(idx.max(axis=0)).astype(np.int64) + 1, 0, shape_arr)
        if np.any(hi <= lo):
            continue
        x, y, z = grid.world_axes(lo, hi)
        mask = np.broadcast_to(shape.contains(x, y, z), tuple(hi - lo))
        view = out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        np.putmask(view, mask, label)
    return out


def _vec(v: NDArray[np.float64] | Sequence[float]) -> Vec:
    a = [float(x) for x in np.asarray(v, dtype=np.float64).ravel()]
    return (a[0], a[1], a[2])
