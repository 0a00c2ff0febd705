"""Secrets in URL paths (an unsubscribe token, a confirmation link) are credentials: who
reads the log file must not be able to use them, or learn an address from them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from itsdangerous import URLSafeSerializer

from tests.security.conftest import Visitor

ADDRESS = "someone.private@example.org"


def _log(app: Any) -> str:
    time.sleep(0.3)  # the log writer batches lines
    return (Path(app.config["CLUBSTACK"].instance) / "logs" / "web.log").read_text()


def test_an_unsubscribe_link_mailed_before_the_fix_is_not_logged(
    app: Any, visitor: Callable[[], Visitor]
) -> None:
    """Links already in people's inboxes carry the address (base64 in the token): they still
    work, and still never reach the log."""
    secret = app.config["CLUBSTACK"].secret()
    token = URLSafeSerializer(secret, salt="clubstack-blog-unsubscribe").dumps({"e": ADDRESS})
    reader = visitor()
    page = reader.get(f"/blog/unsubscribe/{token}")
    assert page.status_code == 200 and ADDRESS in page.text
    assert reader.post(f"/blog/unsubscribe/{token}").status_code == 200
    reader.get(f"/blog/unsubscribe/{token}/")  # mangled by a mail client: routes nowhere
    reader.put(f"/blog/unsubscribe/{token}")  # a method the route does not take
    log = _log(app)
    assert log.count("/blog/unsubscribe/") >= 4, log  # every request was logged ...
    assert token not in log and token.split(".")[0] not in log  # ... without the token
    assert ADDRESS not in log
