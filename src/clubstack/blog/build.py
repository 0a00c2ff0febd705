"""The static site generator: source folder -> model -> Jinja2 templates -> files.

Incremental builds: every source file's parse and Markdown rendering is cached by its
content hash (looked up by mtime and size first), and every output file is recorded in a
manifest with a key that hashes exactly what went into it (template set, site config, the
hashes of the posts it shows, the neighbours' titles ...). A rebuild renders only the outputs
whose key changed and deletes outputs that are no longer produced, so it ends in the same
tree a clean build makes. Rendered post bodies live in the cache (clubstack.blog.bodies), not
in memory, so a build of 10,000+ posts keeps only metadata resident.

Parallel: parsing/rendering of changed sources and rendering of pages run in forked worker
processes (one per core) when there is enough work to pay for them.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from clubstack.blog.content import (
    ContentError,
    Entry,
    SiteConfig,
    load_site_config,
    parse_entry,
)

THEME_DIR = Path(__file__).parent / "theme"
CACHE_VERSION = "6"
PARALLEL_THRESHOLD = 150  # below this many items the pool start-up costs more than it saves

Progress = Callable[[str, int, int], None]


@dataclass
class Record:
    """What the cache keeps per source file: metadata and TOC; body and excerpt are on disk."""

    entry: Entry  # with body emptied
    body_key: str  # the rendered body and excerpt in the BodyStore
    has_more: bool  # there is an excerpt (text before <!--more-->)
    url: str  # depends on site.toml, which is part of the cache key
    ident: str  # URL, title and date: what lists and neighbours show of a post
    toc: list[md.TocItem]


@dataclass
class BuildResult:
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: int = 0
    parsed: int = 0
    errors: list[ContentError] = field(default_factory=list)
    posts: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------- hashing helpers

def _key(*parts: Any) -> str:
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
# only answers after an AttributeError, which cost a fifth of page rendering. Templates may
# still write link["name"].

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
    count: int


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
            autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
            auto_reload=False,  # templates do not change during a build; skip a stat per page
        )
        self.templates_key = _tree_fingerprint(template_dirs)
        self.global_key = _key(CACHE_VERSION, md.RENDERER_VERSION, self.templates_key,
                               config.fingerprint())
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
                self.urls[rec.entry.source], rec.entry.title, local.isoformat(),
                f"{local:%Y-%m-%d}")
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
        self.categories = [Link(t.name, site.taxon_url("category", t.slug))
                           for t in e.categories]
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
            site=site.config, root=site.root, post=self)
        return Markup(html)  # noqa: S704 (an autoescaping template rendered it)


# ---------------------------------------------------------------- phase 1: sources

def _parse_source(site: Site, source: str, kind: str
                  ) -> tuple[Record, md.RenderedBody] | ContentError:
    path = site.src / source
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return ContentError(source, 1, f"not UTF-8 text: {exc.reason}")
    try:
        entry = parse_entry(text, source, kind, site.config)
    except ContentError as exc:
        return exc
    except Exception as exc:
        return ContentError(source, 1, f"cannot read: {exc}")
    body_key = _key(entry.sha, md.RENDERER_VERSION, entry.raw_html)
    try:
        rendered = md.render_markdown(entry.body, raw_html=entry.raw_html, want_toc=entry.toc)
    except Exception as exc:
        return ContentError(source, entry.body_line, f"cannot render: {exc}")
    entry.body = ""
    url = entry.url(site.config)
    ident = f"{url}\x00{entry.title}\x00{entry.date.isoformat()}"
    record = Record(entry=entry, body_key=body_key, has_more=rendered.excerpt is not None,
                    url=url, ident=ident, toc=rendered.toc)
    return record, rendered


# Set in the parent just before the pool forks, so workers inherit the site and the work list
# and only (start, end) ranges and small results cross the process boundary.
_WORKER_SITE: Site | None = None
_WORKER_ITEMS: list[Any] = []


def _parse_chunk(span: tuple[int, int]) -> list[Record | ContentError]:
    """Parse and render a range of sources; their bodies go to the cache in one write."""
    site = _WORKER_SITE
    assert site is not None
    results: list[Record | ContentError] = []
    bodies: list[tuple[str, str, str | None]] = []
    for source, kind in _WORKER_ITEMS[span[0]:span[1]]:
        parsed = _parse_source(site, source, kind)
        if isinstance(parsed, ContentError):
            results.append(parsed)
            continue
        record, rendered = parsed
        bodies.append((record.body_key, rendered.html, rendered.excerpt))
        results.append(record)
    site.bodies.put_many(bodies)
    return results


def _render_chunk(span: tuple[int, int]) -> list[str]:
    assert _WORKER_SITE is not None
    return [_run_job(_WORKER_SITE, job) for job in _WORKER_ITEMS[span[0]:span[1]]]


def _spans(total: int, n: int) -> list[tuple[int, int]]:
    size = max(1, min(64, total // (n * 4) or 1))
    return [(i, min(i + size, total)) for i in range(0, total, size)]


def _pool_map(site: Site, fn: Callable[[tuple[int, int]], list[Any]], items: list[Any],
              workers: int, stage: str, progress: Progress | None) -> list[Any]:
    """Run fn over ranges of items, in forked processes when it pays off; keeps order."""
    global _WORKER_SITE, _WORKER_ITEMS
    _WORKER_SITE, _WORKER_ITEMS = site, items
    results: list[Any] = []
    total = len(items)
    try:
        if workers <= 1 or total < PARALLEL_THRESHOLD:
            for span in _spans(total, 1):
                results.extend(fn(span))
                if progress:
                    progress(stage, len(results), total)
            return results
        site.bodies.hand_over()  # each worker opens its own connection
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for part in pool.map(fn, _spans(total, workers)):
                results.extend(part)
                if progress:
                    progress(stage, len(results), total)
        return results
    finally:
        _WORKER_SITE, _WORKER_ITEMS = None, []


def _scan(src: Path, folder: str) -> list[tuple[str, os.stat_result]]:
    found: list[tuple[str, os.stat_result]] = []
    stack = [folder]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(src, rel)))
        except FileNotFoundError:
            continue
        for item in entries:
            name = item.name
            if name.startswith("."):
                continue
            if item.is_dir():
                stack.append(f"{rel}/{name}")
            elif name.endswith((".md", ".markdown")):
                found.append((f"{rel}/{name}", item.stat()))
    found.sort()
    return found


# ---------------------------------------------------------------- phase 2: outputs

@dataclass
class Job:
    path: str  # output file relative to out
    key: str
    kind: str
    args: tuple[Any, ...] = ()


def _pagination(url_of: Callable[[int], str], number: int, pages: int) -> Pagination:
    return Pagination(number, pages, url_of(number - 1) if number > 1 else None,
                      url_of(number + 1) if number < pages else None)


def _common(site: Site) -> dict[str, Any]:
    return {"site": site.config, "root": site.root, "nav_pages": site.nav_pages,
            "canonical": None}


def _run_job(site: Site, job: Job) -> str:
    kind, args = job.kind, job.args
    data: str | bytes
    if kind == "post":
        rec, newer, older = args
        post = site.view(rec)
        tpl = "post.html" if rec.entry.kind == "post" else "page.html"
        data = site.env.get_template(tpl).render(
            _common(site) | {"post": post, "canonical": post.absolute_url,
                             "newer": site.view(newer) if newer else None,
                             "older": site.view(older) if older else None})
    elif kind == "list":
        recs, heading, url_kind, slug, number, pages, feed = args

        def url_of(n: int) -> str:
            return site.index_url(n) if url_kind == "index" else site.taxon_url(url_kind, slug, n)

        data = site.env.get_template("list.html").render(
            _common(site) | {"posts": [site.view(r) for r in recs], "heading": heading,
                             "pagination": _pagination(url_of, number, pages),
                             "feed": feed, "canonical": site.config.absolute(url_of(number))})
    elif kind == "archive":
        heading, groups, periods = args
        data = site.env.get_template("archives.html").render(
            _common(site) | {"heading": heading, "periods": periods, "groups": [
                ArchiveGroup(g[0], g[1], [site.brief(r) for r in g[2]]) for g in groups]})
    elif kind == "redirect":
        target, title = args
        data = site.env.get_template("redirect.html").render(
            site=site.config, target=target, target_abs=site.config.absolute(target), title=title)
    elif kind == "404":
        data = site.env.get_template("404.html").render(_common(site))
    elif kind == "feed":
        from clubstack.blog.feeds import build_feed

        fmt, title, page_url, feed_url, recs = args
        data = build_feed(site.config, fmt, title, page_url, feed_url,
                          [site.view(r) for r in recs])
    elif kind == "sitemap":
        data = _sitemap(site, args[0])
    elif kind == "text":
        data = args[0]
    elif kind == "pygments":
        data = md.pygments_css()
    elif kind == "copy":
        shutil.copyfile(args[0], _prepare(site, job.path))
        return job.path
    else:  # pragma: no cover - programming error
        raise ValueError(kind)
    target = _prepare(site, job.path)
    if isinstance(data, str):
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(data)
    else:
        with open(target, "wb") as fh:
            fh.write(data)
    return job.path


def _prepare(site: Site, rel: str) -> str:
    """The output file's path, its folder created (once per build and process)."""
    target = os.path.join(site.out, rel)
    folder = os.path.dirname(target)
    if folder not in site.made_dirs:
        try:  # most folders are one post's, in a month folder made before: one mkdir
            os.mkdir(folder)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
        site.made_dirs.add(folder)
    return target


def _sitemap(site: Site, items: list[tuple[str, str | None]]) -> bytes:
    ns = "http://www.sitemaps.org/schemas/sitemap/0.9"
    urlset = ET.Element("urlset", xmlns=ns)
    for loc, lastmod in items:
        url = ET.SubElement(urlset, "url")
        ET.SubElement(url, "loc").text = site.config.absolute(loc)
        if lastmod:
            ET.SubElement(url, "lastmod").text = lastmod
    ET.indent(urlset)
    return ET.tostring(urlset, encoding="utf-8", xml_declaration=True) + b"\n"


def _taxonomy(posts: list[Record], attr: str) -> dict[str, tuple[str, list[Record]]]:
    found: dict[str, tuple[str, list[Record]]] = {}
    for rec in posts:
        for t in getattr(rec.entry, attr):
            found.setdefault(t.slug, (t.name, []))[1].append(rec)
    return dict(sorted(found.items()))


def _plan(site: Site) -> list[Job]:
    cfg, g = site.config, site.global_key
    posts, jobs = site.posts, []

    # post pages: key covers the post source and its neighbours' links
    for i, rec in enumerate(posts):
        newer = posts[i - 1] if i > 0 else None
        older = posts[i + 1] if i + 1 < len(posts) else None
        key = _key(g, "post", rec.entry.sha, newer and newer.ident, older and older.ident)
        jobs.append(Job(site.out_file(site.urls[rec.entry.source]), key, "post",
                        (rec, newer, older)))
    for rec in site.pages:
        key = _key(g, "page", rec.entry.sha)
        jobs.append(Job(site.out_file(site.urls[rec.entry.source]), key, "post",
                        (rec, None, None)))

    def listing(recs: list[Record], heading: str, url_kind: str, slug: str,
                feed: str | None) -> None:
        per = cfg.posts_per_page
        pages = max(1, -(-len(recs) // per))
        for n in range(1, pages + 1):
            chunk = recs[(n - 1) * per:n * per]
            url = site.index_url(n) if url_kind == "index" else site.taxon_url(url_kind, slug, n)
            key = _key(g, "list", heading, url_kind, slug, n, pages, feed,
                       [r.entry.sha for r in chunk])
            jobs.append(Job(site.out_file(url), key, "list",
                            (chunk, heading, url_kind, slug, n, pages, feed)))

    def feeds(recs: list[Record], title: str, page_url: str, prefix: str) -> None:
        latest = recs[:cfg.feed_items]
        shas = [r.entry.sha for r in latest]
        for fmt, name in (("rss", "feed.xml"), ("atom", "atom.xml")):
            url = prefix + name
            jobs.append(Job(site.out_file(url), _key(g, "feed", fmt, title, shas), "feed",
                            (fmt, title, page_url, url, latest)))

    listing(posts, "", "index", "", None)
    feeds(posts, cfg.title, site.root, site.root)
    categories = _taxonomy(posts, "categories")
    for slug, (name, recs) in categories.items():
        base = site.taxon_url("category", slug)
        listing(recs, name, "category", slug, base + "feed.xml")
        feeds(recs, f"{cfg.title}: {name}", base, base)
    for slug, (name, recs) in _taxonomy(posts, "tags").items():
        listing(recs, f"Tagged {name}", "tag", slug, None)

    # archives: /archives/ lists every post by month; /YYYY/ and /YYYY/MM/ list a period
    tz = cfg.tz
    by_month: dict[tuple[int, int], list[Record]] = {}
    for rec in posts:
        local = rec.entry.date.astimezone(tz)
        by_month.setdefault((local.year, local.month), []).append(rec)
    by_year: dict[int, list[Record]] = {}
    for (year, _month), recs in by_month.items():
        by_year.setdefault(year, []).extend(recs)

    def month_name(y: int, m: int) -> str:
        return datetime(y, m, 1).strftime("%B %Y")

    groups = [(month_name(y, m), f"{site.root}{y:04d}/{m:02d}/", recs)
              for (y, m), recs in by_month.items()]
    years = [Period(str(y), f"{site.root}{y:04d}/", len(r))
             for y, r in by_year.items()]
    jobs.append(Job(site.out_file(f"{site.root}archives/"),
                    _key(g, "archives", [r.ident for r in posts]),
                    "archive", ("Archives", groups, years)))
    for year, recs in by_year.items():
        ygroups = [gr for gr in groups if gr[1].startswith(f"{site.root}{year:04d}/")]
        jobs.append(Job(site.out_file(f"{site.root}{year:04d}/"),
                        _key(g, "year", year, [r.ident for r in recs]),
                        "archive", (str(year), ygroups, [])))
    for (y, m), recs in by_month.items():
        jobs.append(Job(site.out_file(f"{site.root}{y:04d}/{m:02d}/"),
                        _key(g, "month", y, m, [r.ident for r in recs]),
                        "archive", (month_name(y, m), [(month_name(y, m), None, recs)], [])))

    # redirects for aliases
    for rec in posts + site.pages:
        target, title = rec.url, rec.entry.title
        for alias in rec.entry.aliases:
            path = site.out_file(site.root.rstrip("/") + alias)
            jobs.append(Job(path, _key(g, "alias", target, title), "redirect", (target, title)))

    # sitemap, robots, 404
    items: list[tuple[str, str | None]] = [(site.root, None)]
    for rec in posts + site.pages:
        e = rec.entry
        when = e.updated or (e.date if e.kind == "post" else None)
        items.append((site.urls[e.source], when.date().isoformat() if when else None))
    items += [(site.taxon_url("category", s), None) for s in categories]
    jobs.append(Job("sitemap.xml", _key(g, "sitemap", items), "sitemap", (items,)))
    robots = f"User-agent: *\nAllow: /\n\nSitemap: {cfg.absolute('sitemap.xml')}\n"
    jobs.append(Job("robots.txt", _key(g, "robots", robots), "text", (robots,)))
    jobs.append(Job("404.html", _key(g, "404"), "404"))
    jobs.append(Job("theme/pygments.css", _key(g, "pygments"), "pygments"))

    # static files: the theme's, then the site's own (which win on a clash)
    statics: dict[str, Path] = {}
    for base, prefix in ((THEME_DIR / "static", "theme/"), (site.src / "static", "")):
        if base.is_dir():
            for dirpath, _dirs, files in os.walk(base):
                for name in files:
                    full = Path(dirpath) / name
                    statics[prefix + str(full.relative_to(base))] = full
    for rel, full in statics.items():
        st = full.stat()
        jobs.append(Job(rel, _key("copy", str(full), st.st_mtime_ns, st.st_size), "copy",
                        (str(full),)))
    return jobs


# ---------------------------------------------------------------- the build

def build(src: Path, out: Path, *, drafts: bool = False, now: datetime | None = None,
          cache_dir: Path | None = None, workers: int | None = None,
          progress: Progress | None = None) -> BuildResult:
    """Build the site in src into out. Broken files are reported in the result, not raised
    (except a broken site.toml, which stops the build)."""
    src, out = Path(src).resolve(), Path(out).resolve()
    now = now or datetime.now(UTC)
    workers = workers or len(os.sched_getaffinity(0))
    config = load_site_config(src)
    cache = (cache_dir or src / ".cache" / "blog").resolve()
    cache.mkdir(parents=True, exist_ok=True)
    site = Site(src, out, cache, config)
    result = BuildResult()

    # fast path: same sources (by stat), templates, config and visibility as the last
    # successful build, and every output still there -> nothing to do
    scanned = [(folder, kind, _scan(src, folder)) for folder, kind in
               (("posts", "post"), ("pages", "page"))]
    signature = _key(site.global_key, drafts, str(out),
                     [(s, st.st_mtime_ns, st.st_size) for _f, _k, found in scanned
                      for s, st in found], _static_stats(src))
    state_path = cache / f"state-{_key(str(out))}.pickle"
    try:
        state = pickle.loads(state_path.read_bytes())  # noqa: S301 (our own cache folder)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        state = {}
    if (state.get("signature") == signature
            and (state["due"] is None or now < state["due"])
            and all(os.path.exists(os.path.join(out, p)) for p in state["outputs"])):
        result.skipped, result.posts = len(state["outputs"]), state["posts"]
        return result
    state_path.unlink(missing_ok=True)

    # sources: reuse cached records when mtime+size match and the body is still on disk
    src_cache_path = cache / "sources.pickle"
    try:
        old_sources: dict[str, tuple[int, int, Record]] = pickle.loads(  # noqa: S301 (our own cache folder)
            src_cache_path.read_bytes())
        if old_sources.get("__key__") != (CACHE_VERSION, md.RENDERER_VERSION,
                                          config.fingerprint()):
            old_sources = {}
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        old_sources = {}
    new_sources: dict[str, Any] = {
        "__key__": (CACHE_VERSION, md.RENDERER_VERSION, config.fingerprint())}
    records: list[Record] = []
    todo: list[tuple[str, str]] = []
    stats: dict[str, tuple[int, int]] = {}
    cached_bodies = site.bodies.keys() if old_sources else set()
    for _folder, kind, found in scanned:
        for source, st in found:
            stats[source] = (st.st_mtime_ns, st.st_size)
            hit = old_sources.get(source)
            if (hit and hit[0] == st.st_mtime_ns and hit[1] == st.st_size
                    and hit[2].body_key in cached_bodies):
                records.append(hit[2])
                new_sources[source] = hit
            else:
                todo.append((source, kind))
    for item in _pool_map(site, _parse_chunk, todo, workers, "parse", progress):
        if isinstance(item, ContentError):
            result.errors.append(item)
            continue
        records.append(item)
        mtime, size = stats[item.entry.source]
        new_sources[item.entry.source] = (mtime, size, item)
    result.parsed = len(todo)

    # the model: published posts newest first, pages, URLs (duplicates are errors)
    def visible(e: Entry) -> bool:
        return drafts or (not e.draft and e.date <= now)

    posts = sorted((r for r in records if r.entry.kind == "post" and visible(r.entry)),
                   key=lambda r: (r.entry.date, r.entry.source), reverse=True)
    pages = sorted((r for r in records if r.entry.kind == "page" and visible(r.entry)),
                   key=lambda r: r.entry.source)
    taken: dict[str, str] = {}
    for rec in sorted(posts + pages, key=lambda r: r.entry.source):
        url = rec.url
        if url in taken:
            result.errors.append(ContentError(
                rec.entry.source, 1, f"URL {url} is already used by {taken[url]}"))
            continue
        taken[url] = rec.entry.source
        site.urls[rec.entry.source] = url
    site.posts = [r for r in posts if r.entry.source in site.urls]
    site.pages = [r for r in pages if r.entry.source in site.urls]
    site.nav_pages = [NavPage(r.entry.title, site.urls[r.entry.source]) for r in site.pages]
    result.posts = len(site.posts)

    # outputs: render what changed, delete what is gone
    manifest_path = cache / f"manifest-{_key(str(out))}.pickle"
    try:
        manifest: dict[str, str] = pickle.loads(manifest_path.read_bytes())  # noqa: S301
    except (OSError, pickle.UnpicklingError, EOFError):
        manifest = {}
    jobs = _plan(site)
    if site.nav_pages:  # the nav bar is on every page
        nav = _key([tuple(p) for p in site.nav_pages])
        for job in jobs:
            if job.kind in ("post", "list", "archive", "404"):
                job.key = _key(job.key, nav)
    wanted: dict[str, Job] = {}
    for job in jobs:
        if job.path in wanted:
            result.errors.append(ContentError(job.path, 1, "two outputs want this file"))
            continue
        wanted[job.path] = job
    out.mkdir(parents=True, exist_ok=True)
    existing = set(manifest) if manifest else set()
    out_prefix = str(out) + os.sep
    to_run = [job for path, job in wanted.items()
              if manifest.get(path) != job.key or not os.path.exists(out_prefix + path)]
    result.skipped = len(wanted) - len(to_run)
    result.written = _pool_map(site, _render_chunk, to_run, workers, "render", progress)
    for path in sorted(existing - set(wanted)):
        target = out / path
        if target.exists():
            target.unlink()
            result.deleted.append(path)
            _prune_dirs(target.parent, out)
    new_manifest = {path: job.key for path, job in wanted.items()}

    # save caches atomically (a killed build leaves the old, still consistent, cache)
    saves = []
    if todo or len(new_sources) != len(old_sources):
        saves.append((src_cache_path, new_sources))
    if result.written or result.deleted or new_manifest != manifest:
        saves.append((manifest_path, new_manifest))
    for path, data in saves:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)
    if todo:
        site.bodies.keep_only({v[2].body_key for k, v in new_sources.items() if k != "__key__"})
    site.bodies.close()
    if not result.errors:
        hidden = [r.entry.date for r in records
                  if not drafts and not r.entry.draft and r.entry.date > now]
        state = {"signature": signature, "due": min(hidden, default=None),
                 "outputs": list(new_manifest), "posts": result.posts}
        state_path.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    return result


def _static_stats(src: Path) -> list[tuple[str, int, int]]:
    found = []
    for base in (THEME_DIR / "static", src / "static"):
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                st = os.stat(os.path.join(dirpath, name))
                found.append((os.path.join(dirpath, name), st.st_mtime_ns, st.st_size))
    return sorted(found)


def _prune_dirs(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
