"""Markdown rendering: GFM features, highlighting, anchors, and where raw HTML may go."""

from clubstack.blog.render import pygments_css, render_markdown


def test_gfm_features_and_highlighting() -> None:
    out = render_markdown(
        "# Title\n\n## Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ x[^n]\n\n"
        "```rust\nfn main() {}\n```\n\n```nosuchlang\n<raw>\n```\n\n[^n]: note\n",
        want_toc=True,
    )
    html = out.html
    assert '<h1 id="title">' in html and '<h2 id="title-1">' in html  # unique anchors
    assert [(t.level, t.anchor) for t in out.toc] == [(1, "title"), (2, "title-1")]
    assert "<td>1</td>" in html and "<del>old</del>" in html
    assert 'class="footnotes"' in html
    assert '<span class="k">fn</span>' in html  # Pygments classes, not inline styles
    assert "&lt;raw&gt;" in html  # unknown language: escaped, not highlighted
    assert out.excerpt is None


def test_more_marker_makes_excerpt() -> None:
    out = render_markdown("Intro.\n\n<!--more-->\n\nRest.\n")
    assert out.excerpt == "<p>Intro.</p>\n"
    assert "Rest." in out.html and "more" not in out.html


def test_raw_html_only_for_imported_posts_and_then_sanitised() -> None:
    source = (
        '<div class="note" onclick="x()">Hi <script>alert(1)</script>'
        '<a href="javascript:alert(2)">a</a><iframe src="//x"></iframe></div>\n\n'
        "[l](javascript:alert(3))\n"
    )
    native = render_markdown(source).html
    assert "<div" not in native and "onclick" not in native and "javascript:" not in native
    imported = render_markdown(source, raw_html=True).html
    assert '<div class="note">' in imported  # layout HTML kept
    for bad in ("onclick", "<script", "alert(1)", "javascript:", "<iframe"):
        assert bad not in imported


def test_pygments_css_has_light_and_dark() -> None:
    css = pygments_css()
    assert ".highlight .k" in css and "prefers-color-scheme: dark" in css
