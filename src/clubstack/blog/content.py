"""The content model of a blog source folder: site.toml, posts and pages with front matter.

Plain Python, no Flask: the generator, the importer and the CLI all use it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

DEFAULT_PERMALINK = "/{year}/{month}/{slug}/"
FRONT_MATTER_KEYS = {
    "title",
    "date",
    "slug",
    "categories",
    "tags",
    "draft",
    "summary",
    "aliases",
    "updated",
    "toc",
    "raw_html",
    "status",
    "author",
    "comments",
    "wordpress_id",
}


class ContentError(Exception):
    """A broken source file; carries the file and line so the CLI can point at it."""

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


def slugify(text: str) -> str:
    """URL slug: ASCII letters, digits and hyphens (accents folded, everything else dropped)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug or "untitled"


@dataclass
class SiteConfig:
    title: str = "My blog"
    base_url: str = "http://localhost:8000"
    author: str = ""
    description: str = ""
    language: str = "en"
    permalink: str = DEFAULT_PERMALINK
    posts_per_page: int = 10
    timezone: str = "UTC"
    feed_items: int = 20
    comments_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def root_path(self) -> str:
        """The path part of base_url, so a blog can live under /blog/."""
        match = re.match(r"^[a-z]+://[^/]+(/.*)?$", self.base_url)
        path = (match.group(1) if match else "") or "/"
        return path if path.endswith("/") else path + "/"

    def absolute(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def fingerprint(self) -> str:
        return hashlib.sha256(repr(sorted(vars(self).items())).encode()).hexdigest()


def load_site_config(src: Path) -> SiteConfig:
    path = src / "site.toml"
    if not path.exists():
        raise ContentError(path, 1, "site.toml is missing")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        line = int(m.group(1)) if (m := re.search(r"line (\d+)", str(exc))) else 1
        raise ContentError(path, line, f"invalid TOML: {exc}") from None
    config = SiteConfig()
    known = {k for k in vars(config) if k != "extra"}
    for key, value in data.items():
        if key in known:
            setattr(config, key, value)
        else:
            config.extra[key] = value
    if not isinstance(config.posts_per_page, int) or config.posts_per_page < 1:
        raise ContentError(path, 1, "posts_per_page must be a positive integer")
    try:
        config.tz  # noqa: B018 - validates the zone name
    except (ZoneInfoNotFoundError, ValueError):
        raise ContentError(path, 1, f"unknown timezone {config.timezone!r}") from None
    if "{slug}" not in config.permalink:
        raise ContentError(path, 1, "permalink must contain {slug}")
    return config


@dataclass
class Taxon:
    """A category or tag: display name and URL slug."""

    name: str
    slug: str


@dataclass
class Entry:
    """A post or a page as parsed from its source file (body not yet rendered)."""

    source: str  # path relative to the site folder, e.g. posts/hello.md
    kind: str  # "post" or "page"
    title: str
    slug: str
    date: datetime  # aware, UTC
    updated: datetime | None
    categories: list[Taxon]
    tags: list[Taxon]
    draft: bool
    summary: str
    aliases: list[str]
    toc: bool
    raw_html: bool
    body: str  # Markdown source without front matter
    body_line: int  # line number of the first body line in the file
    sha: str  # hash of the whole source file
    comments: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def url(self, config: SiteConfig) -> str:
        if self.kind == "page":
            return f"{config.root_path}{self.slug}/"
        local = self.date.astimezone(config.tz)
        path = config.permalink.format(
            year=f"{local.year:04d}",
            month=f"{local.month:02d}",
            day=f"{local.day:02d}",
            slug=self.slug,
        )
        return config.root_path.rstrip("/") + "/" + path.lstrip("/")


_FRONT = re.compile(r"\A(---|\+\+\+)[ \t]*\r?\n(.*?)^\1[ \t]*\r?$\n?", re.DOTALL | re.MULTILINE)


def split_front_matter(text: str, path: str) -> tuple[dict[str, Any], str, int]:
    """Return (metadata, body, line number where the body starts)."""
    match = _FRONT.match(text)
    if not match:
        raise ContentError(path, 1, "missing front matter (start the file with --- or +++)")
    fence, raw = match.group(1), match.group(2)
    try:
        if fence == "+++":
            meta = tomllib.loads(raw)
        else:
            safe_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            meta = yaml.load(raw, Loader=safe_loader) or {}  # noqa: S506 (a safe loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line + 2) if mark else 1
        raise ContentError(path, line, f"invalid front matter: {exc.problem}") from None
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ContentError(path, 1, f"invalid front matter: {exc}") from None
    except ValueError as exc:  # e.g. YAML reads 2021-13-45 as a date and fails
        line = next((i + 2 for i, ln in enumerate(raw.splitlines()) if ln.startswith("date")), 1)
        raise ContentError(path, line, f"bad date: {exc}") from None
    if not isinstance(meta, dict):
        raise ContentError(path, 2, "front matter must be a mapping of keys to values")
    body_line = text.count("\n", 0, match.end()) + 1
    return meta, text[match.end() :], body_line


def _find_line(text: str, key: str) -> int:
    match = re.search(rf"^{re.escape(key)}\s*[:=]", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def parse_datetime(value: Any, tz: ZoneInfo) -> datetime:
    """A front matter date (YAML date/datetime or ISO string) as an aware UTC datetime."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time())
    elif isinstance(value, str):
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError(f"not a date: {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(UTC)


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v).strip() for v in value if str(v).strip()]
    raise ValueError("must be a list of names")


def parse_entry(text: str, source: str, kind: str, config: SiteConfig) -> Entry:
    """Parse one source file. Raises ContentError with the offending line."""
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    meta, body, body_line = split_front_matter(text, source)

    def fail(key: str, reason: str) -> ContentError:
        return ContentError(source, _find_line(text, key), reason)

    title = meta.get("title")
    if not isinstance(title, str | int | float) or not str(title).strip():
        raise fail("title", "title is missing")
    title = str(title).strip()
    tz = config.tz
    try:
        if "date" in meta:
            when = parse_datetime(meta["date"], tz)
        elif kind == "page":
            when = datetime(1970, 1, 1, tzinfo=UTC)
        else:
            raise fail("date", "date is missing")
    except ValueError as exc:
        raise fail("date", f"bad date: {exc}") from None
    try:
        updated = parse_datetime(meta["updated"], tz) if meta.get("updated") else None
    except ValueError as exc:
        raise fail("updated", f"bad updated date: {exc}") from None
    slug = meta.get("slug") or slugify(Path(source).stem if kind == "page" else title)
    slug = str(slug).strip("/")
    if not re.fullmatch(r"[A-Za-z0-9._~%-]+(/[A-Za-z0-9._~%-]+)*", slug) or ".." in slug:
        raise fail("slug", f"slug {slug!r} has characters that do not belong in a URL")
    taxa: dict[str, list[Taxon]] = {}
    for key in ("categories", "tags"):
        try:
            names = _names(meta.get(key))
        except ValueError as exc:
            raise fail(key, f"{key} {exc}") from None
        seen: dict[str, Taxon] = {}
        for name in names:
            seen.setdefault(slugify(name), Taxon(name, slugify(name)))
        taxa[key] = list(seen.values())
    try:
        aliases = _names(meta.get("aliases"))
    except ValueError as exc:
        raise fail("aliases", f"aliases {exc}") from None
    for alias in aliases:
        if not alias.startswith("/") or ".." in alias or "://" in alias:
            raise fail("aliases", f"alias {alias!r} must be a site path starting with /")
    status = meta.get("status")
    draft = bool(meta.get("draft", False)) or status in ("draft", "private", "pending")
    summary = str(meta.get("summary") or "")
    extra = {k: v for k, v in meta.items() if k not in FRONT_MATTER_KEYS}
    return Entry(
        source=source,
        kind=kind,
        title=title,
        slug=slug,
        date=when,
        updated=updated,
        categories=taxa["categories"],
        tags=taxa["tags"],
        draft=draft,
        summary=summary,
        aliases=aliases,
        toc=bool(meta.get("toc", False)),
        raw_html=bool(meta.get("raw_html")),
        body=body,
        body_line=body_line,
        sha=sha,
        comments=bool(meta.get("comments", True)),
        extra=extra,
    )


def new_post_text(title: str, when: datetime, categories: list[str] | None = None) -> str:
    """The source of a fresh post, as `clubstack blog new` writes it."""
    meta = {
        "title": title,
        "date": when.strftime("%Y-%m-%d %H:%M"),
        "slug": slugify(title),
        "categories": categories or [],
        "tags": [],
        "draft": True,
    }
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\nWrite the opening here.\n\n<!--more-->\n\nAnd the rest here.\n"


SITE_TOML = """\
# The blog's settings: `clubstack blog build` reads them. Every key is described in
# docs/blog.md; these are the ones most sites change.
title = {title}
base_url = {base_url}
author = {author}
description = ""
timezone = "UTC"
permalink = "/{{year}}/{{month}}/{{slug}}/"
posts_per_page = 10
# The comments service of a clubstack suite, e.g. "https://club.example.org/blog".
# Empty: no comments under posts.
comments_url = {comments_url}
"""


def init_site(
    src: Path, title: str, base_url: str, author: str, comments_url: str, now: datetime
) -> Path:
    """Write a working site.toml and a first (published) post into SRC; returns the post."""
    if (src / "site.toml").exists():
        raise ContentError(src / "site.toml", 1, "this folder holds a site already")
    src.mkdir(parents=True, exist_ok=True)
    quoted = {
        key: json.dumps(value)
        for key, value in {
            "title": title,
            "base_url": base_url,
            "author": author,
            "comments_url": comments_url,
        }.items()
    }
    (src / "site.toml").write_text(SITE_TOML.format(**quoted), encoding="utf-8")
    (src / "pages").mkdir(exist_ok=True)
    (src / "static").mkdir(exist_ok=True)
    post = new_post(src, "Hello, world", now)
    post.write_text(
        post.read_text(encoding="utf-8").replace("draft: true", "draft: false"), encoding="utf-8"
    )
    return post


def new_post(src: Path, title: str, now: datetime) -> Path:
    if not (src / "site.toml").exists():
        raise ContentError(
            src / "site.toml",
            1,
            f"no site here; make one with `clubstack blog init {src}`, or pass --src SITE",
        )
    config = load_site_config(src)
    local = now.astimezone(config.tz)
    slug = slugify(title)
    path = src / "posts" / f"{local:%Y-%m-%d}-{slug}.md"
    if path.exists():
        raise ContentError(path, 1, "a post with this name already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new_post_text(title, local.replace(tzinfo=None)), encoding="utf-8")
    return path
