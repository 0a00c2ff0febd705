"""Import a WordPress export (WXR 1.0-1.2) into a ready-to-build site folder.

The XML is parsed with defusedxml (no DTDs, no entity expansion, no external entities).
Post bodies keep their HTML (marked ``raw_html``: the renderer sanitises it with nh3), with
WordPress's "semi-HTML" paragraphs turned into <p> blocks the way wpautop does, and
[code]/[sourcecode] shortcodes turned into fenced blocks so Pygments highlights them.
Comments are written to comments.json for the comments service to load.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import defusedxml.ElementTree as SafeET
import tomli_w
import yaml
from defusedxml import DefusedXmlException

from clubstack.blog.content import SiteConfig, parse_entry, slugify

NS_CONTENT = "http://purl.org/rss/1.0/modules/content/"
NS_DC = "http://purl.org/dc/elements/1.1/"
PATTERNS = [
    "/{year}/{month}/{day}/{slug}/",
    "/{year}/{month}/{slug}/",
    "/{year}/{slug}/",
    "/{slug}/",
    "/archives/{slug}/",
]
BLOCK_TAGS = (
    "table|thead|tfoot|caption|col|colgroup|tbody|tr|td|th|div|dl|dd|dt|ul|ol|li|pre|form|"
    "map|area|blockquote|address|math|style|p|h[1-6]|hr|fieldset|legend|section|article|"
    "aside|hgroup|header|footer|nav|figure|figcaption|details|menu|summary|iframe|script|"
    "object|embed|video|audio|noscript|center"
)
_BLOCK_START = re.compile(rf"^<(?:/?(?:{BLOCK_TAGS})\b|!--)", re.I)
_SHORTCODE = re.compile(
    r"\[(code|sourcecode)((?:\s+[a-z]+\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\]]+))*)\s*\]"
    r"(.*?)\[/\1\]",
    re.S | re.I,
)
_ATTR = re.compile(r"([a-z]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\]]+))", re.I)
_PRE = re.compile(r"<pre\b.*?</pre>", re.S | re.I)
_MORE = re.compile(r"<!--more(.*?)-->", re.I)


class WxrError(Exception):
    """The export cannot be read."""


@dataclass
class ImportResult:
    site: SiteConfig
    posts: int = 0
    pages: int = 0
    drafts: int = 0
    skipped: int = 0
    aliases: int = 0
    comments: int = 0
    pending_comments: int = 0
    dropped_comments: int = 0
    attachments: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def wpautop(html: str) -> str:
    """WordPress paragraphs: blank-line separated text becomes <p> blocks, single newlines
    inside them <br />; block-level HTML, <pre> and code shortcodes are left alone. Every
    block ends up separated by a blank line, so CommonMark passes it through as HTML."""
    html = html.replace("\r\n", "\n").replace("\r", "\n")
    saved: list[str] = []

    def keep(text: str) -> str:
        saved.append(text)
        return f"\n\n\x00{len(saved) - 1}\x00\n\n"

    def code(match: re.Match[str]) -> str:
        attrs = {
            m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None)
            for m in _ATTR.finditer(match.group(2))
        }
        lang = attrs.get("language") or attrs.get("lang") or ""
        body = match.group(3).strip("\n")
        fence = "```"
        while fence in body:
            fence += "`"
        return keep(f"{fence}{re.sub(r'[^A-Za-z0-9_+.-]', '', lang)}\n{body}\n{fence}")

    html = _SHORTCODE.sub(code, html)
    html = _PRE.sub(lambda m: keep(m.group(0)), html)
    html = _MORE.sub(lambda m: keep("<!--more-->"), html)
    blocks = []
    for block in re.split(r"\n\s*\n", html):
        block = block.strip()
        if not block:
            continue
        if (m := re.fullmatch(r"\x00(\d+)\x00", block)) is not None:
            blocks.append(saved[int(m.group(1))])
        elif _BLOCK_START.match(block):
            blocks.append(block)
        else:
            blocks.append("<p>" + block.replace("\n", "<br />\n") + "</p>")
    return "\n\n".join(blocks) + "\n"


def _text(el: ET.Element | None) -> str:
    return (el.text or "") if el is not None else ""


def _wp_date(value: str) -> datetime | None:
    value = value.strip()
    if not value or value.startswith("0000"):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def _zone_for(offsets: Counter[timedelta]) -> str:
    """A zone name for the export's most common UTC offset (WXR has no zone name)."""
    if not offsets:
        return "UTC"
    offset, _count = offsets.most_common(1)[0]
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    if rest or not -12 <= hours <= 14:
        return "UTC"
    return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # POSIX: sign inverted


def _path_of(link: str, base_path: str) -> str | None:
    parts = urlsplit(link)
    if parts.query or not parts.path:
        return None  # ?p=123 style links cannot be served by a static site
    path = parts.path
    if base_path != "/" and path.startswith(base_path):
        path = "/" + path[len(base_path) :]
    return path if path.endswith("/") or "." in path.rsplit("/", 1)[-1] else path + "/"


def import_wordpress(export: Path, dest: Path) -> ImportResult:
    try:
        tree = SafeET.parse(str(export), forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise WxrError(f"{export}: not a readable WordPress export: {exc}") from None
    channel = tree.getroot().find("channel")
    if channel is None:
        raise WxrError(f"{export}: no <channel> element: not a WordPress export")
    wp = next(
        (
            el.tag[1:].split("}")[0]
            for el in channel.iter()
            if re.match(r"\{http://wordpress\.org/export/1\.[0-2]/\}", el.tag)
        ),
        None,
    )
    if wp is None:
        raise WxrError(f"{export}: no WordPress (wp:) elements: not a WXR export")
    ns = {"wp": wp, "content": NS_CONTENT, "dc": NS_DC, "excerpt": wp + "excerpt/"}

    def get(el: ET.Element, name: str) -> str:
        return _text(el.find(name, ns))

    link = get(channel, "link").strip() or get(channel, "wp:base_blog_url").strip()
    base = link.rstrip("/") or "http://localhost:8000"
    base_path = (urlsplit(base).path.rstrip("/") or "") + "/"
    items = channel.findall("item")

    # WXR has no zone name; the offset between post_date and post_date_gmt tells it
    offsets: Counter[timedelta] = Counter()
    for item in items:
        local, gmt = _wp_date(get(item, "wp:post_date")), _wp_date(get(item, "wp:post_date_gmt"))
        if local and gmt:
            offsets[local - gmt] += 1
    config = SiteConfig(
        title=get(channel, "title").strip() or "Imported blog",
        base_url=base,
        description=get(channel, "description").strip(),
        language=get(channel, "language").strip() or "en",
        timezone=_zone_for(offsets),
    )
    result = ImportResult(site=config)

    # first pass: what every item is, to pick the permalink pattern that fits most links
    posts: list[dict[str, Any]] = []
    for item in items:
        ptype = get(item, "wp:post_type")
        if ptype == "attachment":
            result.attachments.append((get(item, "title"), get(item, "wp:attachment_url")))
            continue
        if ptype not in ("post", "page"):
            continue
        status = get(item, "wp:status") or "publish"
        if status in ("trash", "auto-draft", "inherit"):
            result.skipped += 1
            continue
        local = _wp_date(get(item, "wp:post_date"))
        gmt = _wp_date(get(item, "wp:post_date_gmt"))
        if gmt is not None:
            when = gmt.replace(tzinfo=UTC)
        elif local is not None:
            when = local.replace(tzinfo=config.tz).astimezone(UTC)
        else:
            when = datetime(1970, 1, 1, tzinfo=UTC)
        title = get(item, "title").strip() or f"Untitled {get(item, 'wp:post_id')}"
        slug = get(item, "wp:post_name").strip() or slugify(title)
        old_path = _path_of(get(item, "link"), base_path)
        if ptype == "page" and old_path and old_path.strip("/"):
            slug = old_path.strip("/")  # keeps parent/child page paths
        cats, tags = [], []
        for cat in item.findall("category"):
            name = (cat.text or "").strip()
            if name and cat.get("domain") == "category":
                cats.append(name)
            elif name and cat.get("domain") == "post_tag":
                tags.append(name)
        posts.append(
            {
                "item": item,
                "type": ptype,
                "status": status,
                "date": when,
                "title": title,
                "slug": slug,
                "old_path": old_path,
                "categories": cats,
                "tags": tags,
                "protected": bool(get(item, "wp:post_password")),
            }
        )

    def local_parts(when: datetime) -> dict[str, str]:
        d = when.astimezone(config.tz)
        return {"year": f"{d.year:04d}", "month": f"{d.month:02d}", "day": f"{d.day:02d}"}

    scores: Counter[str] = Counter()
    for p in posts:
        if p["type"] == "post" and p["old_path"]:
            for pattern in PATTERNS:
                if pattern.format(slug=p["slug"], **local_parts(p["date"])) == p["old_path"]:
                    scores[pattern] += 1
    config.permalink = scores.most_common(1)[0][0] if scores else "/{year}/{month}/{slug}/"

    dest.mkdir(parents=True, exist_ok=True)
    for sub in ("posts", "pages", "static", "templates"):
        (dest / sub).mkdir(exist_ok=True)
    used_files: set[str] = set()
    comments: list[dict[str, Any]] = []
    for p in posts:
        item = p["item"]
        draft = p["status"] in ("draft", "pending", "private") or p["protected"]
        meta: dict[str, Any] = {
            "title": p["title"],
            "date": p["date"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "slug": p["slug"],
        }
        if p["type"] == "post":
            meta["categories"] = p["categories"]
            meta["tags"] = p["tags"]
        if draft:
            meta["draft"] = True
        meta["status"] = p["status"]
        excerpt = get(item, "excerpt:encoded").strip()
        if excerpt:
            meta["summary"] = re.sub(r"<[^>]+>", "", excerpt)
        meta["raw_html"] = True
        meta["wordpress_id"] = int(get(item, "wp:post_id") or 0)
        if p["protected"]:
            result.warnings.append(f"{p['title']}: password-protected, imported as a draft")
        if get(item, "wp:comment_status") == "closed":
            meta["comments"] = False
        body = wpautop(get(item, "content:encoded"))
        folder = "posts" if p["type"] == "post" else "pages"
        stem = (f"{p['date']:%Y-%m-%d}-" if folder == "posts" else "") + slugify(p["slug"])
        name = f"{folder}/{stem}.md"
        if name in used_files:
            name = f"{folder}/{stem}-{meta['wordpress_id']}.md"
        used_files.add(name)

        def render(meta: dict[str, Any] = meta, body: str = body) -> str:
            front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
            return f"---\n{front}---\n{body}"

        entry = parse_entry(render(), name, p["type"], config)
        new_url = entry.url(config)
        new_path = "/" + new_url[len(config.root_path) :]
        if p["old_path"] and p["old_path"] != new_path:
            meta["aliases"] = [p["old_path"]]
            result.aliases += 1
        elif p["old_path"] is None and get(item, "link"):
            result.warnings.append(f"{p['title']}: old link {get(item, 'link')} cannot be kept")
        (dest / name).write_text(render(), encoding="utf-8")
        if p["type"] == "page":
            result.pages += 1
        else:
            result.posts += 1
        result.drafts += draft
        comments.extend(_comments(item, ns, new_url, result))

    (dest / "site.toml").write_text(
        tomli_w.dumps(
            {
                "title": config.title,
                "base_url": config.base_url,
                "author": config.author,
                "description": config.description,
                "language": config.language,
                "permalink": config.permalink,
                "posts_per_page": config.posts_per_page,
                "timezone": config.timezone,
            }
        ),
        encoding="utf-8",
    )
    (dest / "comments.json").write_text(
        json.dumps({"source": "wordpress", "comments": comments}, indent=1, ensure_ascii=False),
        encoding="utf-8",
    )
    if result.attachments:
        lines = [f"{url}\t{title}" for title, url in result.attachments]
        (dest / "attachments.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return result


def _comments(
    item: ET.Element, ns: dict[str, str], post_url: str, result: ImportResult
) -> list[dict[str, Any]]:
    out = []
    for c in item.findall("wp:comment", ns):

        def get(name: str, c: ET.Element = c) -> str:
            return _text(c.find(f"wp:{name}", ns))

        approved = get("comment_approved").strip()
        if approved not in ("1", "0"):  # spam, trash, post-trashed
            result.dropped_comments += 1
            continue
        when = _wp_date(get("comment_date_gmt"))
        out.append(
            {
                "wordpress_id": int(get("comment_id") or 0),
                "parent_wordpress_id": int(get("comment_parent") or 0) or None,
                "post_path": post_url,
                "author": get("comment_author").strip(),
                "email": get("comment_author_email").strip(),
                "url": get("comment_author_url").strip(),
                "ip": get("comment_author_IP").strip(),
                "date": (when.replace(tzinfo=UTC).isoformat() if when else None),
                "content": get("comment_content"),
                "status": "approved" if approved == "1" else "pending",
                "type": get("comment_type").strip() or "comment",
            }
        )
        if approved == "1":
            result.comments += 1
        else:
            result.pending_comments += 1
    return out
