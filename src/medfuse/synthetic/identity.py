"""Fake but realistic identifying fields (PHI) for synthetic patients, drawn from a seed.

The values look like real ones (names, MRNs, dates, accession numbers, hospitals, physicians)
so that privacy checks elsewhere have something to catch. None of them refer to real people.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

__all__ = ["Identity", "draw_identity"]

_FAMILY = (
    "SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "RODRIGUEZ",
    "MARTINEZ", "HERNANDEZ", "LOPEZ", "GONZALEZ", "WILSON", "ANDERSON", "THOMAS", "TAYLOR",
    "MOORE", "JACKSON", "MARTIN", "LEE", "PEREZ", "THOMPSON", "WHITE", "HARRIS", "SANCHEZ",
    "CLARK", "RAMIREZ", "LEWIS", "ROBINSON", "WALKER", "YOUNG", "ALLEN", "KING", "WRIGHT",
    "SCOTT", "TORRES", "NGUYEN", "HILL", "FLORES", "GREEN", "ADAMS", "NELSON", "BAKER", "HALL",
    "MUELLER", "SCHMIDT", "ROSSI", "KOWALSKI", "NOVAK", "TANAKA", "OKAFOR", "DOE",
)  # fmt: skip
_GIVEN_F = (
    "MARY", "PATRICIA", "JENNIFER", "LINDA", "ELIZABETH", "BARBARA", "SUSAN", "JESSICA", "SARAH",
    "KAREN", "LISA", "NANCY", "BETTY", "MARGARET", "SANDRA", "ASHLEY", "EMILY", "JANE", "ANNA",
    "MARIA", "YUKI", "CHIAMAKA", "INGRID",
)  # fmt: skip
_GIVEN_M = (
    "JAMES", "ROBERT", "JOHN", "MICHAEL", "DAVID", "WILLIAM", "RICHARD", "JOSEPH", "THOMAS",
    "CHARLES", "CHRISTOPHER", "DANIEL", "MATTHEW", "ANTHONY", "MARK", "DONALD", "STEVEN", "PAUL",
    "ANDREW", "JOSHUA", "KENJI", "EMEKA", "LARS",
)  # fmt: skip
_INSTITUTIONS = (
    "ST. ELSEWHERE GENERAL HOSPITAL", "MERCY REGIONAL MEDICAL CENTER", "RIVERSIDE UNIVERSITY HOSPITAL",
    "LAKEVIEW COMMUNITY HOSPITAL", "NORTHGATE IMAGING CENTER", "SAINT JUDE CLINIC",
    "HILLCREST MEDICAL CENTRE", "UNIVERSITAETSKLINIKUM NORDSTADT",
)  # fmt: skip
_STUDY_DESCRIPTIONS = (
    "ABDOMEN MULTIMODALITY WORKUP", "ABD PELVIS SCREENING", "ABDOMEN^ROUTINE", "ONCO ABDOMEN FU",
    "ABDOMINAL PAIN WORKUP",
)  # fmt: skip


@dataclass(frozen=True)
class Identity:
    """A synthetic patient's identifying fields, in DICOM value formats."""

    family: str
    given: str
    sex: str
    patient_id: str
    birth_date: str  # YYYYMMDD
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    age: str  # e.g. 054Y
    accession: str
    institution: str
    referring: str  # PN
    operator: str  # PN
    study_description: str
    study_id: str

    @property
    def patient_name(self) -> str:
        """PatientName as a DICOM PN (``FAMILY^GIVEN``)."""
        return f"{self.family}^{self.given}"

    @property
    def folder_name(self) -> str:
        """A folder name that leaks PHI, as some PACS exports do (``FAMILY^GIVEN_MRN``)."""
        return f"{self.patient_name}_{self.patient_id}"


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _doctor(rng: np.random.Generator) -> str:
    given = _pick(rng, _GIVEN_F + _GIVEN_M)
    return f"{_pick(rng, _FAMILY)}^{given}^{_pick(rng, ('A', 'B', 'J', 'K', 'M'))}^DR^"


def draw_identity(rng: np.random.Generator) -> Identity:
    """Draw one fake identity: consistent sex and name, birth date before the study date."""
    sex = "F" if rng.random() < 0.5 else "M"
    given = _pick(rng, _GIVEN_F if sex == "F" else _GIVEN_M)
    study = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3650)))
    age_years = int(rng.integers(18, 90))
    birth = study - dt.timedelta(days=age_years * 365 + int(rng.integers(0, 365)))
    age = (study - birth).days // 365
    seconds = int(rng.integers(7 * 3600, 20 * 3600))
    return Identity(
        family=_pick(rng, _FAMILY),
        given=given,
        sex=sex,
        patient_id=f"MRN{int(rng.integers(10**6, 10**7)):07d}",
        birth_date=birth.strftime("%Y%m%d"),
        study_date=study.strftime("%Y%m%d"),
        study_time=f"{seconds // 3600:02d}{seconds % 3600 // 60:02d}{seconds % 60:02d}",
        age=f"{age:03d}Y",
        accession=f"A{int(rng.integers(10**8, 10**9))}",
        institution=_pick(rng, _INSTITUTIONS),
        referring=_doctor(rng),
        operator=f"{_pick(rng, _FAMILY)}^{_pick(rng, _GIVEN_F + _GIVEN_M)}",
        study_description=_pick(rng, _STUDY_DESCRIPTIONS),
        study_id=str(int(rng.integers(1000, 99999))),
    )
