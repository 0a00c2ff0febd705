"""The OpenAPI description is served, and a bounded schemathesis run finds no 5xx and no answer
that disagrees with it (status codes, content types, bodies, headers, 405 for other methods)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode


def test_openapi_document_is_served(client: Any) -> None:
    response = client.get("/drop/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "/drop"}]
    assert {"/", "/msg/{message_id}", "/msg/{message_id}/raw"} <= set(document["paths"])


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_matches_its_description(make_app: Callable[..., Any], mode: GenerationMode) -> None:
    app = make_app(drop_create_rate="100000/minute", drop_read_rate="100000/minute")
    schema = schemathesis.openapi.from_wsgi("/drop/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5

    checked = 0
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.path == "/" and operation.method == "get":
            continue  # no inputs at all: nothing can be made invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate()

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation  # positive data always exists
            continue
        checked += 1
    assert checked >= 3
