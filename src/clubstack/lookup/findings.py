"""The one interface every check implements: indicator in, findings with a level out."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from clubstack.core.clock import utcnow
from clubstack.lookup.indicators import Indicator, Kind


class Level(enum.IntEnum):
    """How bad a result is. Ordered: the verdict of a row is the highest level."""

    NONE = 0
    HARMLESS = 1
    SUSPICIOUS = 2
    MALICIOUS = 3

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Level.NONE: "no data",
    Level.HARMLESS: "harmless",
    Level.SUSPICIOUS: "suspicious",
    Level.MALICIOUS: "malicious",
}


class Status(enum.StrEnum):
    OK = "ok"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"
    QUOTA_EXHAUSTED = "quota_exhausted"
    NOT_CONFIGURED = "not_configured"


@dataclass
class Finding:
    """One observation, e.g. "SPF ends in +all" (suspicious)."""

    level: Level
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level.name.lower(), "text": self.text}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(Level[data["level"].upper()], data["text"])


@dataclass
class CheckResult:
    """What one check found out about one indicator."""

    check: str
    status: Status = Status.OK
    summary: str = ""
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    as_of: datetime = field(default_factory=utcnow)
    cached: bool = False

    @property
    def level(self) -> Level:
        return max((f.level for f in self.findings), default=Level.NONE)

    def add(self, level: Level, text: str) -> None:
        self.findings.append(Finding(level, text))

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": str(self.status),
            "level": self.level.name.lower(),
            "summary": self.summary,
            "findings": [f.to_dict() for f in self.findings],
            "data": self.data,
            "as_of": self.as_of.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            check=data["check"],
            status=Status(data["status"]),
            summary=data.get("summary", ""),
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            data=data.get("data", {}),
            as_of=datetime.fromisoformat(data["as_of"]),
        )


class Check(Protocol):
    """A check: a name for the column, the kinds it applies to, and ``run``.

    ``run`` must not raise for anything the outside world does (timeouts, bad answers,
    quota): it returns a result with the matching status instead.
    """

    name: str
    title: str
    kinds: frozenset[Kind]

    def run(self, indicator: Indicator) -> CheckResult: ...


def not_applicable(check: str, why: str) -> CheckResult:
    return CheckResult(check, Status.NOT_APPLICABLE, summary=why)


def verdict(results: list[CheckResult]) -> Level:
    return max((r.level for r in results), default=Level.NONE)
