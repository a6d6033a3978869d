"""CT, MR and projection X-ray (CR / DX) series written from rendered phantom images.

Acquisition details vary as they do between scanners: rescale slope/intercept and signedness,
padding outside the reconstruction circle, window presets (one or several, LINEAR or SIGMOID),
feet-first slice order, oblique MR, slice gaps, MONOCHROME1 radiographs, PixelSpacing or only
ImagerPixelSpacing, RLE Lossless or implicit-VR transfer syntaxes, random file names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from medfuse.synthetic.dicom_base import (
    SeriesContext,
    UidSource,
    ds_str,
    ds_strs,
    instance,
    save,
    series_template,
    set_pixel_data,
    set_pixel_format,
)
from medfuse.synthetic.phantom import Rendered

__all__ = ["file_names", "write_ct", "write_mr", "write_xr"]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def file_names(rng: np.random.Generator, count: int) -> list[str]:
    """Random, unique file names in one of three styles (hex + .dcm, bare hex, IM-style)."""
    style = int(rng.integers(3))
    names: list[str] = []
    used: set[str] = set()
    while len(names) < count:
        token = rng.bytes(6).hex()
        name = {0: f"{token}.dcm", 1: token, 2: f"IM{token[:7].upper()}"}[style]
        if name not in used:
            used.add(name)
            names.append(name)
    return names


def _plane(ds: Dataset, rendered: Rendered, k: int, thickness: float) -> None:
    """Image Plane module (C.7.6.2) for slice ``k``."""
    g = rendered.grid
    ds.PixelSpacing = ds_strs([g.spacing[1], g.spacing[2]])
    ds.ImageOrientationPatient = ds_strs([*g.row_dir, *g.col_dir])
    pos = g.slice_position(k)
    ds.ImagePositionPatient = ds_strs(pos)
    ds.SliceThickness = ds_str(thickness)
    ds.SliceLocation = ds_str(float(np.dot(pos, g.normal)))


def write_ct(
    rendered: Rendered, ctx: SeriesContext, uids: UidSource, rng: np.random.Generator, folder: Path
) -> int:
    """Write the CT series (one file per slice); returns the number of files."""
    variant = int(rng.integers(4))
    slope, intercept, signed, bits = [
        (1.0, -1024.0, False, 12),
        (1.0, -1000.0, False, 16),
        (1.0, -1024.0, True, 16),
        (0.5, -1024.0, False, 16),
    ][variant]
    hu = rendered.values
    stored = np.rint((hu - intercept) / slope)
    lo, hi = (-(2**15), 2**15 - 1) if signed else (0, 2**bits - 1)
    stored = np.clip(stored, lo, hi).astype(np.int16 if signed else np.uint16)
    s, rows, cols = (int(n) for n in hu.shape)
    if signed:  # padding outside the reconstruction circle, as many scanners write it
        yy, xx = np.ogrid[:rows, :cols]
        outside = (yy - (rows - 1) / 2) ** 2 + (xx - (cols - 1) / 2) ** 2 > (
            min(rows, cols) / 2
        ) ** 2
        stored[:, outside] = -2000
    windows = [(40.0, 400.0)]
    if rng.random() < 0.4:
        windows.append(((-600.0, 1500.0), (400.0, 1800.0))[int(rng.integers(2))])
    explanations = {40.0: "ABDOMEN", -600.0: "LUNG", 400.0: "BONE"}
    kvp = float(rng.choice([100, 120, 140]))
    kernel = str(rng.choice(["B30f", "STANDARD", "FC03", "Br40d"]))
    descending = rng.random() < 0.3
    position = "FFS" if rendered.grid.normal[2] < 0 else "HFS"
    names = file_names(rng, s)
    t = series_template(ctx)
    t.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    t.PatientPosition = position
    t.KVP = ds_str(kvp)
    t.ConvolutionKernel = kernel
    t.XRayTubeCurrent = int(rng.integers(80, 400))
    set_pixel_format(t, stored.shape, bits, signed)
    t.PhotometricInterpretation = "MONOCHROME2"
    if signed:
        t.PixelPaddingValue = -2000
    t.RescaleIntercept = ds_str(intercept)
    t.RescaleSlope = ds_str(slope)
    t.RescaleType = "HU"
    if len(windows) > 1:
        t.WindowCenter = ds_strs([w[0] for w in windows])
        t.WindowWidth = ds_strs([w[1] for w in windows])
        t.WindowCenterWidthExplanation = [explanations[w[0]] for w in windows]
    else:
        t.WindowCenter, t.WindowWidth = ds_str(windows[0][0]), ds_str(windows[0][1])
        t.WindowCenterWidthExplanation = "ABDOMEN"
    for k in range(s):
        ds = instance(t, ctx, uids("CT", k), s - k if descending else k + 1)
        _plane(ds, rendered, k, rendered.grid.spacing[0])
        set_pixel_data(ds, stored[k])
        save(ds, folder / names[k], stored[k], ctx.transfer_syntax)
    return s


def write_mr(
    rendered: Rendered, ctx: SeriesContext, uids: UidSource, rng: np.random.Generator, folder: Path
) -> int:
    """Write the T2-weighted MR series (arbitrary units, no rescale to physical values)."""
    signal = rendered.values
    bits = 12 if rng.random() < 0.5 else 16
    top = float(np.percentile(signal, 99.9)) or 1.0
    gain = _u(rng, 0.4, 0.95) * (2**bits - 1) / top if bits == 12 else _u(rng, 0.5, 8.0)
    stored = np.clip(np.rint(signal * gain), 0, 2**bits - 1).astype(np.uint16)
    body = stored[stored > 0.1 * stored.max()]
    p5, p99 = (
        (float(v) for v in np.percentile(body, [5, 99])) if body.size else (0.0, float(2**bits - 1))
    )
    with_rescale = rng.random() < 0.5
    spacing = rendered.grid.spacing[0]
    thickness = spacing * _u(rng, 0.8, 1.0)
    field = float(rng.choice([1.5, 3.0]))
    names = file_names(rng, stored.shape[0])
    t = series_template(ctx)
    t.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    t.ScanningSequence = "SE"
    t.SequenceVariant = ["SK", "SP"]
    t.ScanOptions = ""
    t.MRAcquisitionType = "2D"
    t.SequenceName = "*tse2d1_15"
    t.RepetitionTime = ds_str(round(_u(rng, 2500, 6000)))
    t.EchoTime = ds_str(round(_u(rng, 80, 120), 1))
    t.EchoTrainLength = int(rng.integers(12, 32))
    t.MagneticFieldStrength = ds_str(field)
    t.ImagingFrequency = ds_str(field * 42.577478)
    t.ImagedNucleus = "1H"
    t.SpacingBetweenSlices = ds_str(spacing)
    t.PatientPosition = "HFS"
    set_pixel_format(t, stored.shape, bits, False)
    t.PhotometricInterpretation = "MONOCHROME2"
    if with_rescale:
        t.RescaleIntercept = "0"
        t.RescaleSlope = "1"
    t.WindowCenter = ds_str(round((p5 + p99) / 2))
    t.WindowWidth = ds_str(max(1.0, round(p99 - p5)))
    for k in range(stored.shape[0]):
        ds = instance(t, ctx, uids("MR", k), k + 1)
        _plane(ds, rendered, k, thickness)
        set_pixel_data(ds, stored[k])
        save(ds, folder / names[k], stored[k], ctx.transfer_syntax)
    return int(stored.shape[0])


def write_xr(
    rendered: Rendered, ctx: SeriesContext, uids: UidSource, rng: np.random.Generator, folder: Path
) -> int:
    """Write the frontal radiograph (CR or DX, chosen by ``ctx.modality``); returns 1."""
    line = rendered.values
    bits = int(rng.choice([12, 14, 15])) if ctx.modality == "DX" else int(rng.choice([10, 12]))
    top = 2**bits - 1
    offset = _u(rng, 0.01, 0.05) * top
    gain = (top * _u(rng, 0.8, 0.93) - offset) / max(float(line.max()), 1e-3)
    value = np.clip(np.rint(offset + gain * line), 0, top)
    mono1 = rng.random() < 0.35
    stored = (top - value if mono1 else value).astype(np.uint16)
    body = stored[line > 0.2 * float(line.max())] if line.max() > 0 else stored.ravel()
    p1, p99 = (float(v) for v in np.percentile(body, [1, 99]))
    sp = rendered.grid.spacing[1]
    mag = _u(rng, 1.05, 1.2)

    ds = instance(series_template(ctx), ctx, uids("XR", 0), 1)
    ds.PatientOrientation = ["L", "F"]
    ds.ViewPosition = "AP"
    ds.KVP = ds_str(float(rng.choice([70, 75, 80, 85])))
    ds.ExposureTime = int(rng.integers(10, 60))
    ds.DistanceSourceToDetector = ds_str(1000 * mag)
    ds.DistanceSourceToPatient = ds_str(1000.0)
    ds.EstimatedRadiographicMagnificationFactor = ds_str(mag)
    ds.ImagerPixelSpacing = ds_strs([sp * mag, sp * mag])
    if rng.random() < 0.5:
        ds.PixelSpacing = ds_strs([sp, sp])
    set_pixel_format(ds, stored.shape, bits, False)
    set_pixel_data(ds, stored)
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    if ctx.modality == "DX":
        ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1 if mono1 else -1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "US"
        ds.PresentationLUTShape = "INVERSE" if mono1 else "IDENTITY"
        ds.LossyImageCompression = "00"
        ds.BurnedInAnnotation = "NO"
        ds.ImageLaterality = "U"
        ds.DetectorType = "SCINTILLATOR"
        ds.AcquisitionContextSequence = DicomSequence()
        region = Dataset()
        region.CodeValue = "818981001"
        region.CodingSchemeDesignator = "SCT"
        region.CodeMeaning = "Abdomen"
        ds.AnatomicRegionSequence = DicomSequence([region])
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
    if rng.random() < 0.85:
        centre, width = (p1 + p99) / 2, max(2.0, p99 - p1)
        if rng.random() < 0.3:
            ds.WindowCenter = ds_strs([round(centre), round(centre)])
            ds.WindowWidth = ds_strs([round(width), round(width * 0.6)])
            ds.WindowCenterWidthExplanation = ["NORMAL", "HARDER"]
        else:
            ds.WindowCenter = ds_str(round(centre))
            ds.WindowWidth = ds_str(round(width))
        if rng.random() < 0.2:
            ds.VOILUTFunction = "SIGMOID"
    save(ds, folder / file_names(rng, 1)[0], stored, ctx.transfer_syntax)
    return 1
