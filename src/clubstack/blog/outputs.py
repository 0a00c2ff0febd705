"""The files a build writes, one small dataclass per kind, each rendering its own content.

clubstack.blog.plan makes them (with the key that says when a file must be written again);
clubstack.blog.write turns one into a file. `render` returns the file's text or bytes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from clubstack.blog import render as md
from clubstack.blog.model import ArchiveGroup, Pagination, Period, Record, Site

# An archive group as planned: its heading, its page's URL (None on that page) and its posts.
Group = tuple[str, str | None, list[Record]]


@dataclass
class Output:
    path: str  # output file relative to out
    key: str  # hashes what went into the file; the file is written again when it changes
    # The nav bar (the site's pages) is on this kind of page: its key covers the nav too.
    has_nav: ClassVar[bool] = False

    def render(self, site: Site) -> str | bytes:  # pragma: no cover - every kind has its own
        raise NotImplementedError


def _common(site: Site) -> dict[str, Any]:
    return {"site": site.config, "root": site.root, "nav_pages": site.nav_pages, "canonical": None}


def _pagination(url_of: Callable[[int], str], number: int, pages: int) -> Pagination:
    return Pagination(
        number,
        pages,
        url_of(number - 1) if number > 1 else None,
        url_of(number + 1) if number < pages else None,
    )


@dataclass
class PostPage(Output):
    """A post with links to its neighbours, or a page (no neighbours)."""

    rec: Record
    newer: Record | None
    older: Record | None
    has_nav: ClassVar[bool] = True

    def render(self, site: Site) -> str:
        post = site.view(self.rec)
        tpl = "post.html" if self.rec.entry.kind == "post" else "page.html"
        return site.env.get_template(tpl).render(
            _common(site)
            | {
                "post": post,
                "canonical": post.absolute_url,
                "newer": site.view(self.newer) if self.newer else None,
                "older": site.view(self.older) if self.older else None,
            }
        )


@dataclass
class ListPage(Output):
    """One page of a listing: the front page, a category's or a tag's."""

    recs: list[Record]
    heading: str
    url_kind: str  # "index", "category" or "tag"
    slug: str
    number: int
    pages: int
    feed: str | None
    has_nav: ClassVar[bool] = True

    def url_of(self, site: Site, n: int) -> str:
        if self.url_kind == "index":
            return site.index_url(n)
        return site.taxon_url(self.url_kind, self.slug, n)

    def render(self, site: Site) -> str:
        def url_of(n: int) -> str:
            return self.url_of(site, n)

        return site.env.get_template("list.html").render(
            _common(site)
            | {
                "posts": [site.view(r) for r in self.recs],
                "heading": self.heading,
                "pagination": _pagination(url_of, self.number, self.pages),
                "feed": self.feed,
                "canonical": site.config.absolute(url_of(self.number)),
            }
        )


@dataclass
class ArchivePage(Output):
    """/archives/, a year's or a month's page."""

    heading: str
    groups: list[Group]
    periods: list[Period]
    has_nav: ClassVar[bool] = True

    def render(self, site: Site) -> str:
        return site.env.get_template("archives.html").render(
            _common(site)
            | {
                "heading": self.heading,
                "periods": self.periods,
                "groups": [
                    ArchiveGroup(g[0], g[1], [site.brief(r) for r in g[2]]) for g in self.groups
                ],
            }
        )


@dataclass
class Redirect(Output):
    """An alias of a post or page: a page that sends the reader on."""

    target: str
    title: str

    def render(self, site: Site) -> str:
        return site.env.get_template("redirect.html").render(
            site=site.config,
            target=self.target,
            target_abs=site.config.absolute(self.target),
            title=self.title,
        )


@dataclass
class NotFoundPage(Output):
    has_nav: ClassVar[bool] = True

    def render(self, site: Site) -> str:
        return site.env.get_template("404.html").render(_common(site))


@dataclass
class Feed(Output):
    fmt: str  # "rss" or "atom"
    title: str
    page_url: str
    feed_url: str
    recs: list[Record]

    def render(self, site: Site) -> bytes:
        from clubstack.blog.feeds import build_feed  # feedgen loads lxml: only when a feed changed

        return build_feed(
            site.config,
            self.fmt,
            self.title,
            self.page_url,
            self.feed_url,
            [site.view(r) for r in self.recs],
        )


@dataclass
class Sitemap(Output):
    items: list[tuple[str, str | None]]  # (URL, last modified date or None)

    def render(self, site: Site) -> bytes:
        ns = "http://www.sitemaps.org/schemas/sitemap/0.9"
        urlset = ET.Element("urlset", xmlns=ns)
        for loc, lastmod in self.items:
            url = ET.SubElement(urlset, "url")
            ET.SubElement(url, "loc").text = site.config.absolute(loc)
            if lastmod:
                ET.SubElement(url, "lastmod").text = lastmod
        ET.indent(urlset)
        return ET.tostring(urlset, encoding="utf-8", xml_declaration=True) + b"\n"


@dataclass
class TextFile(Output):
    text: str

    def render(self, site: Site) -> str:
        return self.text


@dataclass
class PygmentsCss(Output):
    def render(self, site: Site) -> str:
        return md.pygments_css()


@dataclass
class StaticCopy(Output):
    """A static file, copied as it is (clubstack.blog.write copies it; nothing to render)."""

    source: str
