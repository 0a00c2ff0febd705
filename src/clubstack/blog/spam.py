"""Optional Akismet check with the `akismet` client library.

The library talks to https://rest.akismet.com; the transport below sends its requests to the
configured `akismet_api_url` instead (the same URL in production) and applies the core's
SSRF guard, so the adapter runs unchanged against a local server in tests.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import akismet
import httpx

from clubstack.blog.comments import CommentIn, SpamCheckUnavailableError
from clubstack.core.net import check_destination

log = logging.getLogger("clubstack.blog.spam")


class _BaseURLTransport(httpx.HTTPTransport):
    def __init__(self, base_url: str, allow: list[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        parts = urlsplit(base_url.rstrip("/"))
        self.scheme, self.host, self.port = parts.scheme, parts.hostname or "", parts.port
        self.prefix = parts.path
        self.allow = allow

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self.scheme, host=self.host, port=self.port, path=self.prefix + request.url.path
        )
        request.headers["Host"] = request.url.netloc.decode("ascii")
        check_destination(self.host, self.port, self.allow)
        return super().handle_request(request)


class AkismetCheck:
    """Callable spam check: True when Akismet says spam. When Akismet cannot be reached the
    comment is not refused: SpamCheckUnavailableError tells the caller to hold it instead."""

    def __init__(
        self, key: str, site_url: str, api_url: str, allow: list[str], timeout: float = 10.0
    ) -> None:
        self.key, self.site_url, self.api_url = key, site_url, api_url
        self.allow, self.timeout = allow, timeout

    def __call__(self, data: CommentIn, ip: str) -> bool:
        transport = _BaseURLTransport(self.api_url, self.allow)
        http_client = httpx.Client(
            transport=transport, timeout=self.timeout, headers={"User-Agent": akismet.USER_AGENT}
        )
        config = akismet.Config(key=self.key, url=self.site_url)
        # No `with`: entering the client re-verifies the key, a second request per comment;
        # a bad key still shows up as an error from comment-check itself.
        client = akismet.SyncClient(config=config, http_client=http_client)
        try:
            verdict = client.comment_check(
                user_ip=ip,
                comment_type="comment",
                comment_author=data.author,
                comment_author_email=data.email,
                comment_author_url=data.website,
                comment_content=data.body,
                permalink=self.site_url.rstrip("/") + data.path,
            )
        except akismet.AkismetError as exc:
            log.warning(
                "Akismet check failed (%s: %r); holding the comment for moderation",
                exc,
                exc.__cause__,
            )
            raise SpamCheckUnavailableError(str(exc)) from exc
        finally:
            http_client.close()
        return bool(verdict)
