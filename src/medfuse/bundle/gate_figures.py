"""A variant's accuracy record, summarised as the few figures a person compares.

``medfuse export`` writes the fp32 variant's held-out metrics into ``accuracy``
(``auroc_macro``, ``accuracy``, ``severity_mae_ml``, ...); ``medfuse quantize`` writes each
quantized variant's gate result (``gate``, ``outputs.<name>.agreement``, ``auroc_drop``,
``max_abs_drift``, ...). :func:`gate_figures` reads either shape into one
:class:`GateFigures`:

- ``agreement``: the lowest top-1 agreement with fp32 over the classification outputs
  (1.0 for fp32 itself, the reference);
- ``auroc_drop``: the largest AUROC drop against fp32 (fp32 − variant; negative = better);
- ``drift``: the largest ``max_abs_drift`` of any output against fp32;
- ``auroc``: the variant's own macro AUROC where recorded;
- ``gate``: ``"passed"`` / ``"failed"`` / ``"reference"`` (fp32) / ``None`` (not recorded).

Missing figures are ``None``, never guessed. :meth:`GateFigures.compact` is the one short
text form tables use (``inspect``, ``bench --all``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["GateFigures", "gate_figures"]


@dataclass(frozen=True)
class GateFigures:
    """Compact accuracy figures of one variant (see the module doc)."""

    gate: str | None
    agreement: float | None
    auroc_drop: float | None
    drift: float | None
    auroc: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def compact(self) -> str:
        """E.g. ``gate passed, agree 1.000, AUROC drop -0.0005, drift 0.197``."""
        parts = [f"gate {self.gate}"] if self.gate and self.gate != "reference" else []
        if self.gate == "reference":
            parts.append("reference")
        if self.auroc is not None:
            parts.append(f"AUROC {self.auroc:.3f}")
        if self.agreement is not None and self.gate != "reference":
            parts.append(f"agree {self.agreement:.3f}")
        if self.auroc_drop is not None:
            parts.append(f"AUROC drop {self.auroc_drop:+.4f}")
        if self.drift is not None:
            parts.append(f"drift {self.drift:.3g}")
        return ", ".join(parts) or "-"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _extreme(values: list[float | None], pick: Any) -> float | None:
    found = [v for v in values if v is not None]
    return pick(found) if found else None


def gate_figures(precision: str, accuracy: Mapping[str, Any] | None) -> GateFigures:
    """Summarise ``accuracy`` (a variant's manifest record) of variant ``precision``."""
    acc: Mapping[str, Any] = accuracy or {}
    outputs = acc.get("outputs")
    outs: list[Mapping[str, Any]] = (
        [o for o in outputs.values() if isinstance(o, Mapping)]
        if isinstance(outputs, Mapping)
        else []
    )
    if precision == "fp32" and not outs:
        return GateFigures(
            gate="reference",
            agreement=1.0,
            auroc_drop=None,
            drift=None,
            auroc=_num(acc.get("auroc_macro")),
        )
    gate = acc.get("gate")
    return GateFigures(
        gate=str(gate) if gate is not None else None,
        agreement=_extreme([_num(o.get("agreement")) for o in outs], min),
        auroc_drop=_extreme([_num(o.get("auroc_drop")) for o in outs], max),
        drift=_extreme([_num(o.get("max_abs_drift")) for o in outs], max),
        auroc=_extreme([_num(o.get("auroc")) for o in outs], min),
    )
