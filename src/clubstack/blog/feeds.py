"""RSS 2.0 and Atom feeds with feedgen. Dates come from the posts, never from the clock, so
a rebuild writes byte-identical feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from feedgen.feed import FeedGenerator

from clubstack.blog.content import SiteConfig

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def build_feed(
    config: SiteConfig, fmt: str, title: str, page_url: str, feed_url: str, posts: list[Any]
) -> bytes:
    """posts: objects with title, url, absolute_url, date, updated, categories, body."""
    fg = FeedGenerator()
    page_abs, feed_abs = config.absolute(page_url), config.absolute(feed_url)
    fg.id(page_abs)
    fg.title(title)
    fg.link(href=feed_abs, rel="self")
    fg.link(href=page_abs, rel="alternate")  # last: feedgen uses it as the RSS channel link
    fg.description(config.description or title)
    fg.subtitle(config.description or title)
    fg.language(config.language)
    if config.author:
        fg.author({"name": config.author})
    newest = max((p.updated or p.date for p in posts), default=EPOCH)
    fg.updated(newest)
    fg.lastBuildDate(newest)
    fg.generator("clubstack blog", uri=None)
    for post in posts:
        fe = fg.add_entry(order="append")
        fe.id(post.absolute_url)
        fe.guid(post.absolute_url, permalink=True)
        fe.title(post.title)
        fe.link(href=post.absolute_url, rel="alternate")
        fe.published(post.date)
        fe.updated(post.updated or post.date)
        for cat in post.categories:
            fe.category(term=cat.name, label=cat.name)
        body = str(post.body)
        if fmt == "atom":
            fe.content(body, type="html")
        else:
            fe.description(body)
        if fmt == "atom" and post.summary:
            fe.summary(post.summary)
    if fmt == "atom":
        return fg.atom_str(pretty=True)
    return fg.rss_str(pretty=True)
