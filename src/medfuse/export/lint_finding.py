"""One finding of the TensorRT lint (:mod:`medfuse.export.lint`): what, where, how bad."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LintFinding", "Severity"]

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class LintFinding:
    """One finding: what, where (node name and op), how bad."""

    severity: Severity
    code: str
    message: str
    op_type: str = ""
    node: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "severity": self.severity,
            "code": self.code,
            "op_type": self.op_type,
            "node": self.node,
            "message": self.message,
        }
