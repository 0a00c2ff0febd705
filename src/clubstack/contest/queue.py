"""The messages between the site and the sandbox nodes: JSON only, validated on both sides.

Huey pickles its messages by default, and unpickling runs code: a sandbox node that ran a
hostile program and was taken over could then write a pickle into the queue and run code in
the site's worker. The two contest queues ("clubstack-contest-sandbox" towards the nodes,
"clubstack-contest-answers" back to the site) use ``JsonSerializer`` instead: a message is a
JSON object, and one that is not a known contest task with arguments of the expected shape is
refused before any task sees it (``InvalidMessage``). Sandbox nodes should reach the store
with credentials limited to those two queues' keys (see docs/contest.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from huey.registry import Message
from huey.serializer import Serializer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

HEX_RE = r"^[0-9a-f]*$"
MAX_SOURCE = 60_000_000
MAX_VECTORS = 4096


class InvalidMessage(ValueError):
    """A queue message that is not JSON of a known contest task with valid arguments."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LimitsModel(_Strict):
    source_bytes: int = Field(ge=1)
    compile_memory_bytes: int = Field(ge=1)
    compile_seconds: float = Field(gt=0)
    object_bytes: int = Field(ge=1)
    run_memory_bytes: int = Field(ge=1)
    call_cpu_seconds: float = Field(gt=0)
    random_vectors: int = Field(ge=1, le=MAX_VECTORS)


class ExecutePayload(_Strict):
    """What the site sends a sandbox node: the kind, the source, the inputs, the limits."""

    kind: Literal["aes", "ecdsa"]
    source: str = Field(max_length=MAX_SOURCE)
    inputs: list[str] = Field(max_length=MAX_VECTORS)
    limits: LimitsModel


class Answer(_Strict):
    """What a sandbox node sends back (``judge.execute_job``'s answer)."""

    stage: Literal["compile_failed", "tested", "error"]
    message: str = Field(default="", max_length=20_000)
    object_size: int = Field(default=0, ge=0)
    verdict: str = Field(default="", max_length=32)
    reason: str = Field(default="", max_length=4000)
    outputs: list[str] = Field(default_factory=list, max_length=MAX_VECTORS)
    cpu_ns: list[int] = Field(default_factory=list, max_length=MAX_VECTORS)
    rss_kib: list[int] = Field(default_factory=list, max_length=MAX_VECTORS)
    total_cpu_seconds: float = 0.0
    peak_memory: int = 0
    wall_seconds: float = 0.0


def _hex_list(values: list[str], length: int | None = None) -> None:
    for value in values:
        if (
            len(value) > 256
            or (length is not None and len(value) != length)
            or any(c not in "0123456789abcdef" for c in value)
        ):
            raise InvalidMessage("a hex field is malformed")


def check_execute(args: list[Any], kwargs: Mapping[str, Any]) -> None:
    if kwargs or len(args) != 2 or type(args[0]) is not int:
        raise InvalidMessage("contest.execute takes (challenge id, payload)")
    try:
        payload = ExecutePayload.model_validate(args[1])
    except ValidationError as exc:
        raise InvalidMessage(f"bad execute payload: {exc.error_count()} error(s)") from None
    _hex_list(payload.inputs)


def check_progress(args: list[Any], kwargs: Mapping[str, Any]) -> None:
    if (
        kwargs
        or len(args) != 2
        or type(args[0]) is not int
        or args[1] not in ("started", "compiled")
    ):
        raise InvalidMessage("contest.progress takes (challenge id, started|compiled)")


def check_conclude(args: list[Any], kwargs: Mapping[str, Any]) -> None:
    if kwargs or len(args) != 2 or type(args[0]) is not int:
        raise InvalidMessage("contest.conclude takes (challenge id, answer)")
    validate_answer(args[1])


def validate_answer(answer: Any) -> dict[str, Any]:
    """The answer as a plain dict with every field checked (raises InvalidMessage)."""
    try:
        model = Answer.model_validate(answer)
    except ValidationError as exc:
        raise InvalidMessage(f"bad answer: {exc.error_count()} error(s)") from None
    _hex_list(model.outputs)
    return model.model_dump()


Checker = Callable[[list[Any], Mapping[str, Any]], None]


class JsonSerializer(Serializer):
    """Huey messages as JSON objects; only the named tasks, with checked arguments."""

    def __init__(self, tasks: Mapping[str, Checker]) -> None:
        super().__init__()
        self.tasks = dict(tasks)

    def serialize(self, data: Any) -> bytes:
        if isinstance(data, Message):
            self.check(data.name, list(data.args), data.kwargs or {})
            if data.on_complete is not None or data.on_error is not None or data.chord_config:
                raise InvalidMessage("contest tasks are not chained")
            body: dict[str, Any] = {
                "message": {
                    "id": data.id,
                    "name": data.name,
                    "eta": _when(data.eta),
                    "retries": data.retries,
                    "retry_delay": data.retry_delay,
                    "priority": data.priority,
                    "args": list(data.args),
                    "kwargs": data.kwargs or {},
                    "expires": _when(data.expires),
                    "expires_resolved": _when(data.expires_resolved),
                    "timeout": data.timeout,
                    "retry_backoff": data.retry_backoff,
                }
            }
        else:
            body = {"value": data}  # results, and Huey's own bookkeeping
        return json.dumps(body, separators=(",", ":")).encode()

    def deserialize(self, data: bytes) -> Any:
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidMessage("not a JSON message") from exc
        if not isinstance(body, dict) or len(body) != 1:
            raise InvalidMessage("not a contest queue message")
        if "value" in body:
            return body["value"]
        raw = body.get("message")
        if not isinstance(raw, dict):
            raise InvalidMessage("not a contest queue message")
        name, args, kwargs = raw.get("name"), raw.get("args"), raw.get("kwargs")
        if (
            not isinstance(name, str)
            or not isinstance(args, list)
            or not isinstance(kwargs, dict)
            or not isinstance(raw.get("id"), str)
        ):
            raise InvalidMessage("malformed contest queue message")
        self.check(name, args, kwargs)
        for key in ("retries", "priority", "timeout", "retry_delay"):
            if raw.get(key) is not None and type(raw[key]) not in (int, float):
                raise InvalidMessage(f"malformed {key}")
        return Message(
            raw["id"],
            name,
            _parse_when(raw.get("eta")),
            raw.get("retries") or 0,
            raw.get("retry_delay") or 0,
            raw.get("priority"),
            tuple(args),
            kwargs or None,
            None,
            None,
            _parse_when(raw.get("expires")),
            _parse_when(raw.get("expires_resolved")),
            raw.get("timeout"),
            None,
            bool(raw.get("retry_backoff")),
        )

    def check(self, name: str, args: list[Any], kwargs: Mapping[str, Any]) -> None:
        checker = self.tasks.get(name)
        if checker is None:
            raise InvalidMessage(f"task {name!r} is not allowed on this queue")
        checker(args, kwargs)


def _when(value: Any) -> str | None:
    if value is None or isinstance(value, (int, float)):
        return None if value is None else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise InvalidMessage("unexpected time value")


def _parse_when(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidMessage("malformed time value")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise InvalidMessage("malformed time value") from None
