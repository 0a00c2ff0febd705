"""Optional Akismet check: one form POST to Akismet's comment-check endpoint.

Akismet's API is a form POST answered with ``true`` (spam), ``false`` (not spam) or, when the
key or a field is wrong, ``invalid`` with an ``X-akismet-debug-help`` header. It goes through
the core's HTTP client like every other outbound request (its SSRF guard also checks the address
the socket really connected to), to the configured `akismet_api_url` (the same URL in production,
a local server speaking the API in tests).

The key is not verified before each comment (``verify-key`` would be a second request per
comment): a wrong key makes comment-check answer ``invalid``, which holds the comment like any
other unusable answer.
"""

from __future__ import annotations

import logging

from clubstack.blog.comments import CommentIn, SpamCheckUnavailableError
from clubstack.core.net import HttpClient, SSRFBlocked, UpstreamError, http

log = logging.getLogger("clubstack.blog.spam")

COMMENT_CHECK = "/1.1/comment-check"
MAX_ANSWER_BYTES = 1024  # "true", "false" or "invalid"


class AkismetCheck:
    """Callable spam check: True when Akismet says spam. When Akismet cannot be reached or gives
    no verdict the comment is not refused: SpamCheckUnavailableError tells the caller to hold it
    instead."""

    def __init__(
        self, key: str, site_url: str, api_url: str, client: HttpClient | None = None
    ) -> None:
        self.key, self.site_url = key, site_url
        self.url = api_url.rstrip("/") + COMMENT_CHECK
        self.client = client

    def __call__(self, data: CommentIn, ip: str) -> bool:
        form = {
            "api_key": self.key,
            "blog": self.site_url,
            "user_ip": ip,
            "comment_type": "comment",
            "comment_author": data.author,
            "comment_author_email": data.email,
            "comment_author_url": data.website,
            "comment_content": data.body,
            "permalink": self.site_url.rstrip("/") + data.path,
        }
        try:
            response = (self.client or http()).post(self.url, data=form, stream=True)
            try:
                status = response.status_code
                answer = response.raw.read(MAX_ANSWER_BYTES, decode_content=True)
                debug = response.headers.get("X-akismet-debug-help", "")
            finally:
                response.close()
        except (UpstreamError, SSRFBlocked) as exc:
            return self._unavailable(f"Akismet unreachable: {exc.message}")
        except OSError as exc:  # the connection broke while the answer was read
            return self._unavailable(f"Akismet answer cut off: {type(exc).__name__}")
        verdict = answer.strip().decode("ascii", "replace")
        if status == 200 and verdict in ("true", "false"):
            return verdict == "true"
        detail = f": {debug}" if debug else ""
        return self._unavailable(f"Akismet answered HTTP {status} {verdict[:40]!r}{detail}")

    @staticmethod
    def _unavailable(reason: str) -> bool:
        log.warning("%s; holding the comment for moderation", reason)
        raise SpamCheckUnavailableError(reason)
