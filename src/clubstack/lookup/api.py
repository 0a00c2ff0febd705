"""JSON API: POST <prefix>/api/lookups -> 202; GET <prefix>/api/lookups/<id>."""

from __future__ import annotations

from flask import Response, jsonify, request, url_for
from pydantic import BaseModel, Field, model_validator

from clubstack.core.accounts.auth import api_auth, current_user
from clubstack.core.db import db
from clubstack.core.service import Routes
from clubstack.core.validation import validate
from clubstack.core.web import API_CSP, limiter, with_csp
from clubstack.lookup import batches
from clubstack.lookup.views import _rate, start, user_key

routes = Routes()  # added to the service's blueprint by its __init__


class LookupRequest(BaseModel):
    indicators: list[str] | None = Field(default=None, max_length=100_000)
    text: str | None = Field(default=None, max_length=2_000_000)

    @model_validator(mode="after")
    def _one_of(self) -> LookupRequest:
        if not self.indicators and not self.text:
            raise ValueError("give indicators (a list) or text")
        return self


@routes.post("/api/lookups")
@api_auth
@with_csp(API_CSP)
@limiter.limit(_rate, key_func=user_key)
def api_create() -> tuple[Response, int]:
    body = validate(LookupRequest, request.get_json(silent=True))
    found = batches.recognise(text=body.text, indicators=body.indicators)
    batch = start(found, "api")
    response = jsonify(
        {
            "id": batch.id,
            "status": batch.status,
            "indicators": len(found),
            "url": url_for("lookup.api_status", batch_id=batch.id, _external=True),
        }
    )
    response.headers["Location"] = url_for("lookup.api_status", batch_id=batch.id)
    return response, 202


@routes.get("/api/lookups/<batch_id>")
@api_auth
@with_csp(API_CSP)
def api_status(batch_id: str) -> Response:
    user = current_user()
    assert user is not None
    return jsonify(batches.batch_json(batches.get_batch(db.session(), batch_id, user.id)))
