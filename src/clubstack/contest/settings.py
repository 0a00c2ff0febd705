"""The contest's settings: CLUBSTACK_CONTEST_* or the [contest] table of instance/clubstack.toml."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from clubstack.contest.kinds import ContestLimits
from clubstack.settings import ServiceSettings, service_config


class ContestSettings(ServiceSettings):
    model_config = service_config("contest")

    title: str = Field(default="White-box contest", description="Name of the contest.")
    kind: str = Field(default="ecdsa", description="Challenge kind: aes or ecdsa.")
    start: datetime | None = Field(
        default=None, description="When submissions open (UTC, ISO 8601); unset: open now."
    )
    posting_deadline: datetime | None = Field(
        default=None, description="Last moment to submit a challenge (UTC); unset: no end."
    )
    final_deadline: datetime | None = Field(
        default=None, description="End of the contest: breaks refused, strawberries frozen (UTC)."
    )
    scoreboard_freeze: datetime | None = Field(
        default=None,
        description="From this moment (UTC) the public scoreboard, overview and feed stop "
        "moving until the organisers lift the freeze after the end; organisers see it live.",
    )
    source_bytes: int = Field(default=50_000_000, ge=1, description="Largest source file.")
    compile_memory_bytes: int = Field(
        default=500_000_000, ge=16_000_000, description="Memory for compiling and linking."
    )
    compile_seconds: float = Field(default=100.0, gt=0, description="CPU time to compile.")
    object_bytes: int = Field(default=20_000_000, ge=1, description="Largest object file.")
    run_memory_bytes: int = Field(
        default=20_000_000, ge=1_000_000, description="Memory of the test run (RAM limit)."
    )
    call_cpu_seconds: float = Field(default=3.0, gt=0, description="CPU time per call.")
    random_vectors: int = Field(
        default=100, ge=1, le=4000, description="Random test vectors (edge cases come on top)."
    )
    submit_rate: str = Field(
        default="10/hour;3/minute", description="Submissions allowed per user (rate limit)."
    )
    break_rate: str = Field(
        default="30/hour;5/minute", description="Break attempts allowed per user (rate limit)."
    )
    sandbox_slots: int = Field(
        default=0,
        ge=0,
        description="Submissions a sandbox node judges at once (`clubstack contest worker`); "
        "0: one per CPU core.",
    )
    question_rate: str = Field(
        default="20/hour;5/minute", description="Questions to the organisers allowed per user."
    )
    job_timeout_minutes: int = Field(
        default=30,
        ge=1,
        description="A job still running after this long is presumed lost: retried once, "
        "then failed.",
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        from clubstack.contest.kinds import KINDS

        if value not in KINDS:
            raise ValueError(f"unknown kind {value!r} (aes or ecdsa)")
        return value

    @field_validator("start", "posting_deadline", "final_deadline", "scoreboard_freeze")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a timezone, e.g. 2026-06-01T12:00:00Z")
        return value

    def limits(self) -> ContestLimits:
        return ContestLimits(
            source_bytes=self.source_bytes,
            compile_memory_bytes=self.compile_memory_bytes,
            compile_seconds=self.compile_seconds,
            object_bytes=self.object_bytes,
            run_memory_bytes=self.run_memory_bytes,
            call_cpu_seconds=self.call_cpu_seconds,
            random_vectors=self.random_vectors,
        )
