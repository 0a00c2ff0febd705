"""One validator for HTML forms and JSON bodies: a pydantic model in, the same error shape out."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from clubstack.core.errors import InputError

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any) -> M:
    """Validate `data` (a dict from JSON or a form) against `model`, or raise InputError."""
    if not isinstance(data, dict):
        raise InputError("Expected a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        fields: dict[str, str] = {}
        for item in error.errors(include_url=False, include_input=False):
            name = ".".join(str(part) for part in item["loc"]) or "body"
            message = item["msg"].removeprefix("Value error, ")
            fields.setdefault(name, message)
        raise InputError(fields=fields) from None


def form_to_dict(form: Any) -> dict[str, Any]:
    """A werkzeug MultiDict as a plain dict (repeated keys become lists); empty fields dropped."""
    data: dict[str, Any] = {}
    for key in form:
        values = [v for v in form.getlist(key) if v != ""]
        if key in ("csrf_token",) or not values:
            continue
        data[key] = values if len(values) > 1 else values[0]
    return data
