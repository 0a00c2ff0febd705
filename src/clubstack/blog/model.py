"""The blog's model: a built site's records and what templates see of them.

`Site` holds everything a render needs (config, Jinja environment, the published posts and
pages, their URLs); it is built in the parent process and inherited by forked workers.
`cache_key` hashes what went into an output or a cached parse (see clubstack.blog.build).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
)
from markupsafe import Markup

from clubstack.blog import render as md
from clubstack.blog.bodies import BodyStore
from clubstack.blog.content import Entry, SiteConfig

THEME_DIR = Path(__file__).parent / "theme"
CACHE_VERSION = "6"


@dataclass
class Record:
    """What the cache keeps per source file: metadata and TOC; body and excerpt are on disk."""

    entry: Entry  # with body emptied
    body_key: str  # the rendered body and excerpt in the BodyStore
    has_more: bool  # there is an excerpt (text before <!--more-->)
    url: str  # depends on site.toml, which is part of the cache key
    ident: str  # URL, title and date: what lists and neighbours show of a post
    toc: list[md.TocItem]


def cache_key(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=16).hexdigest()


def _tree_fingerprint(dirs: Iterable[Path]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for base in dirs:
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            h.update(str(path.relative_to(base)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------- what templates see
# Named tuples rather than dicts: Jinja looks an attribute up with getattr first, and a dict
# only answers after an AttributeError, a large part of page rendering (docs/benchmarks.md).
# Templates may still write link["name"].


class Link(NamedTuple):
    """A category or tag of a post, or an archive group."""

    name: str
    url: str


class NavPage(NamedTuple):
    title: str
    url: str


class Brief(NamedTuple):
    """What an archive line shows of a post."""

    url: str
    title: str
    iso_date: str
    short_date: str


class ArchiveGroup(NamedTuple):
    name: str
    url: str | None
    posts: list[Brief]


class Period(NamedTuple):
    name: str
    url: str
    count: int  # type: ignore[assignment]  # shadows tuple.count: themes read period.count


class Pagination(NamedTuple):
    number: int
    pages: int
    newer: str | None
    older: str | None


# ---------------------------------------------------------------- the build context


class Site:
    """Everything a render needs; built in the parent, inherited by forked workers."""

    def __init__(self, src: Path, out: Path, cache: Path, config: SiteConfig) -> None:
        self.src, self.out, self.cache, self.config = src, out, cache, config
        self.bodies = BodyStore(cache / "bodies.sqlite3")
        self.root = config.root_path
        self.made_dirs: set[str] = set()  # output folders known to exist in this build
        template_dirs = [src / "templates", THEME_DIR / "templates"]
        (cache / "jinja").mkdir(parents=True, exist_ok=True)
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(d)) for d in template_dirs]),
            bytecode_cache=FileSystemBytecodeCache(str(cache / "jinja")),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # templates do not change during a build; skip a stat per page
        )
        self.templates_key = _tree_fingerprint(template_dirs)
        self.global_key = cache_key(
            CACHE_VERSION, md.RENDERER_VERSION, self.templates_key, config.fingerprint()
        )
        self.posts: list[Record] = []
        self.pages: list[Record] = []
        self.urls: dict[str, str] = {}  # source -> url
        self.views: dict[str, PostView] = {}
        self.briefs: dict[str, Brief] = {}
        self.nav_pages: list[NavPage] = []

    def view(self, rec: Record) -> PostView:
        view = self.views.get(rec.entry.source)
        if view is None:
            view = self.views[rec.entry.source] = PostView(self, rec)
        return view

    def brief(self, rec: Record) -> Brief:
        """Cheaper than a PostView for the thousands of lines of the archives (each post is on
        three archive pages, so it is made once)."""
        brief = self.briefs.get(rec.entry.source)
        if brief is None:
            local = rec.entry.date.astimezone(self.config.tz)
            brief = self.briefs[rec.entry.source] = Brief(
                self.urls[rec.entry.source], rec.entry.title, local.isoformat(), f"{local:%Y-%m-%d}"
            )
        return brief

    def taxon_url(self, kind: str, slug: str, number: int = 1) -> str:
        base = f"{self.root}{kind}/{slug}/"
        return base if number == 1 else f"{base}page/{number}/"

    def index_url(self, number: int) -> str:
        return self.root if number == 1 else f"{self.root}page/{number}/"

    def out_file(self, url_path: str) -> str:
        """Output file (relative to out) for a site URL path."""
        rel = url_path.removeprefix(self.root)
        rel = rel.lstrip("/")
        if rel == "" or rel.endswith("/"):
            rel += "index.html"
        elif "." not in rel.rsplit("/", 1)[-1]:
            rel += "/index.html"
        return rel


class PostView:
    """A post as templates see it. The rendered body is read from the cache on demand."""

    def __init__(self, site: Site, rec: Record) -> None:
        e = rec.entry
        self._site, self._rec = site, rec
        self.title, self.summary, self.comments = e.title, e.summary, e.comments
        self.url = site.urls[e.source]
        self.absolute_url = site.config.absolute(self.url)
        local = e.date.astimezone(site.config.tz)
        self.date, self.iso_date = e.date, local.isoformat()
        self.human_date = f"{local.day} {local:%B %Y}"
        self.short_date = f"{local:%Y-%m-%d}"
        self.updated = e.updated
        upd = e.updated.astimezone(site.config.tz) if e.updated else None
        self.updated_human = f"{upd.day} {upd:%B %Y}" if upd else ""
        self.categories = [Link(t.name, site.taxon_url("category", t.slug)) for t in e.categories]
        self.tags = [Link(t.name, site.taxon_url("tag", t.slug)) for t in e.tags]
        self.toc = rec.toc if e.toc else []
        self.has_more = rec.has_more

    @property
    def body(self) -> Markup:
        return Markup(self._site.bodies.html(self._rec.body_key))  # noqa: S704 (our renderer wrote it)

    @cached_property
    def excerpt(self) -> Markup:
        """Cached: a post shows up on several list pages rendered by the same process."""
        if self._rec.has_more:
            return Markup(self._site.bodies.excerpt(self._rec.body_key))  # noqa: S704 (our renderer wrote it)
        return self.body

    @cached_property
    def list_html(self) -> Markup:
        """The post as list pages show it (summary.html): rendered once per process, then
        reused on every index, category and tag page the post is on."""
        site = self._site
        html = site.env.get_template("summary.html").render(
            site=site.config, root=site.root, post=self
        )
        return Markup(html)  # noqa: S704 (an autoescaping template rendered it)
