"""What a build writes: every output file of the site, with the key that decides whether it
must be written again (it hashes exactly what went into the file: the template set and site
config through the site's global key, the hashes of the posts a page shows, the neighbours'
titles ...). Plain data in, a list of clubstack.blog.outputs out; nothing is rendered here.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from clubstack.blog.model import THEME_DIR, NavPage, Period, Record, Site, cache_key
from clubstack.blog.outputs import (
    ArchivePage,
    Feed,
    Group,
    ListPage,
    NotFoundPage,
    Output,
    PostPage,
    PygmentsCss,
    Redirect,
    Sitemap,
    StaticCopy,
    TextFile,
)

Taxonomy = dict[str, tuple[str, list[Record]]]  # slug -> (name, posts)


def plan(site: Site) -> list[Output]:
    """Every output of the site, in the order a clean build writes them."""
    categories = _taxonomy(site.posts, "categories")
    outputs: list[Output] = []
    outputs += _post_pages(site)
    outputs += _listings_and_feeds(site, categories)
    outputs += _archives(site)
    outputs += _redirects(site)
    outputs += _site_files(site, categories)
    outputs += _statics(site)
    if site.nav_pages:  # the nav bar is on every page
        nav = cache_key([tuple(p) for p in site.nav_pages])
        for output in outputs:
            if output.has_nav:
                output.key = cache_key(output.key, nav)
    return outputs


def nav_pages(site: Site) -> list[NavPage]:
    return [NavPage(r.entry.title, site.urls[r.entry.source]) for r in site.pages]


def _taxonomy(posts: list[Record], attr: str) -> Taxonomy:
    found: Taxonomy = {}
    for rec in posts:
        for t in getattr(rec.entry, attr):
            found.setdefault(t.slug, (t.name, []))[1].append(rec)
    return dict(sorted(found.items()))


def _post_pages(site: Site) -> list[Output]:
    """Posts (the key covers the post's source and its neighbours' links), then pages."""
    g, posts = site.global_key, site.posts
    outputs: list[Output] = []
    for i, rec in enumerate(posts):
        newer = posts[i - 1] if i > 0 else None
        older = posts[i + 1] if i + 1 < len(posts) else None
        key = cache_key(g, "post", rec.entry.sha, newer and newer.ident, older and older.ident)
        outputs.append(PostPage(site.out_file(site.urls[rec.entry.source]), key, rec, newer, older))
    for rec in site.pages:
        key = cache_key(g, "page", rec.entry.sha)
        outputs.append(PostPage(site.out_file(site.urls[rec.entry.source]), key, rec, None, None))
    return outputs


def _listing(
    site: Site, recs: list[Record], heading: str, url_kind: str, slug: str, feed: str | None
) -> list[Output]:
    per = site.config.posts_per_page
    pages = max(1, -(-len(recs) // per))
    outputs: list[Output] = []
    for n in range(1, pages + 1):
        chunk = recs[(n - 1) * per : n * per]
        url = site.index_url(n) if url_kind == "index" else site.taxon_url(url_kind, slug, n)
        key = cache_key(
            site.global_key,
            "list",
            heading,
            url_kind,
            slug,
            n,
            pages,
            feed,
            [r.entry.sha for r in chunk],
        )
        outputs.append(
            ListPage(site.out_file(url), key, chunk, heading, url_kind, slug, n, pages, feed)
        )
    return outputs


def _feeds(site: Site, recs: list[Record], title: str, page_url: str, prefix: str) -> list[Output]:
    latest = recs[: site.config.feed_items]
    shas = [r.entry.sha for r in latest]
    outputs: list[Output] = []
    for fmt, name in (("rss", "feed.xml"), ("atom", "atom.xml")):
        url = prefix + name
        key = cache_key(site.global_key, "feed", fmt, title, shas)
        outputs.append(Feed(site.out_file(url), key, fmt, title, page_url, url, latest))
    return outputs


def _listings_and_feeds(site: Site, categories: Taxonomy) -> list[Output]:
    """The front page, each category's and each tag's pages; the site's and each category's
    feeds."""
    cfg, posts = site.config, site.posts
    outputs = _listing(site, posts, "", "index", "", None)
    outputs += _feeds(site, posts, cfg.title, site.root, site.root)
    for slug, (name, recs) in categories.items():
        base = site.taxon_url("category", slug)
        outputs += _listing(site, recs, name, "category", slug, base + "feed.xml")
        outputs += _feeds(site, recs, f"{cfg.title}: {name}", base, base)
    for slug, (name, recs) in _taxonomy(posts, "tags").items():
        outputs += _listing(site, recs, f"Tagged {name}", "tag", slug, None)
    return outputs


def _month_name(year: int, month: int) -> str:
    return datetime(year, month, 1).strftime("%B %Y")


def _archives(site: Site) -> list[Output]:
    """/archives/ lists every post by month; /YYYY/ and /YYYY/MM/ list a period."""
    g, posts, root = site.global_key, site.posts, site.root
    by_month: dict[tuple[int, int], list[Record]] = {}
    for rec in posts:
        local = rec.entry.date.astimezone(site.config.tz)
        by_month.setdefault((local.year, local.month), []).append(rec)
    by_year: dict[int, list[Record]] = {}
    for (year, _month), recs in by_month.items():
        by_year.setdefault(year, []).extend(recs)

    groups: list[Group] = [
        (_month_name(y, m), f"{root}{y:04d}/{m:02d}/", recs) for (y, m), recs in by_month.items()
    ]
    years = [Period(str(y), f"{root}{y:04d}/", len(r)) for y, r in by_year.items()]
    outputs: list[Output] = [
        ArchivePage(
            site.out_file(f"{root}archives/"),
            cache_key(g, "archives", [r.ident for r in posts]),
            "Archives",
            groups,
            years,
        )
    ]
    for year, recs in by_year.items():
        ygroups = [gr for gr in groups if gr[1].startswith(f"{root}{year:04d}/")]  # type: ignore[union-attr]
        outputs.append(
            ArchivePage(
                site.out_file(f"{root}{year:04d}/"),
                cache_key(g, "year", year, [r.ident for r in recs]),
                str(year),
                ygroups,
                [],
            )
        )
    for (y, m), recs in by_month.items():
        outputs.append(
            ArchivePage(
                site.out_file(f"{root}{y:04d}/{m:02d}/"),
                cache_key(g, "month", y, m, [r.ident for r in recs]),
                _month_name(y, m),
                [(_month_name(y, m), None, recs)],
                [],
            )
        )
    return outputs


def _redirects(site: Site) -> list[Output]:
    """A page at each alias of a post or page."""
    outputs: list[Output] = []
    for rec in site.posts + site.pages:
        target, title = rec.url, rec.entry.title
        for alias in rec.entry.aliases:
            path = site.out_file(site.root.rstrip("/") + alias)
            outputs.append(
                Redirect(path, cache_key(site.global_key, "alias", target, title), target, title)
            )
    return outputs


def _site_files(site: Site, categories: Taxonomy) -> list[Output]:
    """Sitemap, robots.txt, the 404 page and the highlighting stylesheet."""
    g, cfg = site.global_key, site.config
    items: list[tuple[str, str | None]] = [(site.root, None)]
    for rec in site.posts + site.pages:
        e = rec.entry
        when = e.updated or (e.date if e.kind == "post" else None)
        items.append((site.urls[e.source], when.date().isoformat() if when else None))
    items += [(site.taxon_url("category", s), None) for s in categories]
    robots = f"User-agent: *\nAllow: /\n\nSitemap: {cfg.absolute('sitemap.xml')}\n"
    return [
        Sitemap("sitemap.xml", cache_key(g, "sitemap", items), items),
        TextFile("robots.txt", cache_key(g, "robots", robots), robots),
        NotFoundPage("404.html", cache_key(g, "404")),
        PygmentsCss("theme/pygments.css", cache_key(g, "pygments")),
    ]


def _statics(site: Site) -> list[Output]:
    """Static files: the theme's, then the site's own (which win on a clash)."""
    statics: dict[str, Path] = {}
    for base, prefix in ((THEME_DIR / "static", "theme/"), (site.src / "static", "")):
        if base.is_dir():
            for dirpath, _dirs, files in os.walk(base):
                for name in files:
                    full = Path(dirpath) / name
                    statics[prefix + str(full.relative_to(base))] = full
    outputs: list[Output] = []
    for rel, full in statics.items():
        st = full.stat()
        outputs.append(
            StaticCopy(rel, cache_key("copy", str(full), st.st_mtime_ns, st.st_size), str(full))
        )
    return outputs
