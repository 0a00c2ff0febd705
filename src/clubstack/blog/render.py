"""Markdown to HTML for posts: cmarkgfm (GFM tables, footnotes, strikethrough, autolinks),
Pygments for fenced code, anchors on headings, an optional table of contents.

Safety: posts written in Markdown are rendered in cmark's safe mode, so raw HTML and
javascript: links are dropped by the C library itself. Only entries marked ``raw_html``
(what the WordPress importer writes) are rendered with raw HTML on, and that HTML then goes
through nh3 (an allow-list sanitiser) before we add our own highlighting markup, so an old
export cannot smuggle scripts, event handlers or iframes onto the site.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import version

import cmarkgfm
import nh3
from cmarkgfm.cmark import Options
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from clubstack.blog.content import slugify
from clubstack.blog.lexing import faster

# Part of every cache key: bump the number when this module's output changes; a new
# Pygments (different highlighting) or nh3 (different sanitising) invalidates caches too.
RENDERER_VERSION = f"1/pygments-{version('pygments')}/nh3-{version('nh3')}"
EXTENSIONS = ["table", "strikethrough", "autolink", "tagfilter", "tasklist"]
LIGHT_STYLE = "friendly"
DARK_STYLE = "monokai"

MORE_RE = re.compile(r"^[ \t]*<!--\s*more\s*-->[ \t]*$", re.MULTILINE | re.IGNORECASE)
_CODE_RE = re.compile(r'<pre lang="([^"]*)"><code>(.*?)</code></pre>', re.DOTALL)
_HEADING_RE = re.compile(r"<h([1-6])>(.*?)</h\1>", re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")

_SANITISE_TAGS = set(nh3.ALLOWED_TAGS) | {"figure", "figcaption", "section", "sup", "sub"}
_SANITISE_ATTRS = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_SANITISE_ATTRS.setdefault("*", set()).update({"class", "id", "title", "lang", "dir"})
_SANITISE_ATTRS.setdefault("img", set()).update({"src", "alt", "width", "height", "loading"})
_SANITISE_ATTRS.setdefault("a", set()).update({"href", "name"})
_SANITISE_ATTRS.setdefault("pre", set()).update({"lang"})


@dataclass
class TocItem:
    level: int
    anchor: str
    text: str


@dataclass
class RenderedBody:
    html: str
    excerpt: str | None  # the part before <!--more-->, or None when there is no marker
    toc: list[TocItem] = field(default_factory=list)


_FORMATTER = HtmlFormatter(cssclass="highlight", wrapcode=True)


@lru_cache(maxsize=256)
def _lexer(name: str) -> Lexer | None:
    try:
        return faster(get_lexer_by_name(name, stripnl=False, ensurenl=True))
    except ClassNotFound:
        return None


def _highlight_block(match: re.Match[str]) -> str:
    lang = match.group(1).split()[0] if match.group(1).strip() else ""
    lexer = _lexer(lang.lower()) if lang else None
    if lexer is None:
        return match.group(0)
    code = html.unescape(match.group(2))
    return highlight(code, lexer, _FORMATTER)


def _markdown(text: str, raw_html: bool) -> str:
    options = Options.CMARK_OPT_FOOTNOTES | Options.CMARK_OPT_GITHUB_PRE_LANG
    if raw_html:
        options |= Options.CMARK_OPT_UNSAFE
    # tagfilter only escapes <script> & co. into visible text; nh3 removes them instead
    extensions = [e for e in EXTENSIONS if e != "tagfilter"] if raw_html else EXTENSIONS
    out = cmarkgfm.markdown_to_html_with_extensions(text, options=options, extensions=extensions)
    if not raw_html:
        return out.replace("<!-- raw HTML omitted -->", "")
    return nh3.clean(
        out,
        tags=_SANITISE_TAGS,
        attributes=_SANITISE_ATTRS,
        url_schemes={"http", "https", "mailto"},
        link_rel=None,
    )


def _add_anchors(out: str, toc: list[TocItem] | None) -> str:
    used: dict[str, int] = {}

    def anchor(match: re.Match[str]) -> str:
        level, inner = int(match.group(1)), match.group(2)
        text = html.unescape(_TAG_RE.sub("", inner)).strip()
        base = slugify(text)
        count = used.get(base, 0)
        used[base] = count + 1
        ident = base if count == 0 else f"{base}-{count}"
        if toc is not None:
            toc.append(TocItem(level, ident, text))
        # ident is a slug ([a-z0-9-]), inner is HTML that cmark/nh3 already produced.
        return (
            f'<h{level} id="{ident}">{inner}'
            f' <a class="anchor" href="#{ident}" aria-label="Link to this section">#</a>'
            f"</h{level}>"
        )

    return _HEADING_RE.sub(anchor, out)


def render_markdown(text: str, raw_html: bool = False, want_toc: bool = False) -> RenderedBody:
    """Render a post body. The excerpt is rendered from the text before <!--more-->."""
    parts = MORE_RE.split(text, maxsplit=1)
    toc: list[TocItem] = []
    full = _markdown("\n".join(parts), raw_html)
    full = _CODE_RE.sub(_highlight_block, full)
    full = _add_anchors(full, toc)
    excerpt = None
    if len(parts) == 2:
        excerpt = _CODE_RE.sub(_highlight_block, _markdown(parts[0], raw_html))
        excerpt = _add_anchors(excerpt, None)
    return RenderedBody(full, excerpt, toc if want_toc else [])


def pygments_css() -> str:
    """Stylesheet for highlighted code: light by default, dark when the reader prefers it."""
    light = HtmlFormatter(style=LIGHT_STYLE).get_style_defs(".highlight")
    dark = HtmlFormatter(style=DARK_STYLE).get_style_defs(".highlight")
    dark = "\n".join("  " + line for line in dark.splitlines())
    return (
        f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
        f":root[data-theme=dark] .highlight {{ color-scheme: dark; }}\n"
    )
