"""WordPress (WXR) import: a ready-to-build site that keeps the old URLs and comments."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clubstack.blog.build import build
from clubstack.blog.content import load_site_config
from clubstack.blog.wordpress import WxrError, import_wordpress, wpautop

WXR = Path(__file__).parent / "fixture_wxr.xml"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def imported(tmp_path: Path):
    src = tmp_path / "site"
    result = import_wordpress(WXR, src)
    out = tmp_path / "out"
    built = build(src, out, now=NOW, cache_dir=tmp_path / "cache")
    assert built.ok, built.errors
    return src, out, result


def test_site_toml_from_export(imported) -> None:
    src, _out, _result = imported
    config = load_site_config(src)
    assert config.title == "Giles' Old Blog"
    assert config.base_url == "https://old.example.com"
    assert config.language == "en-GB"
    assert config.permalink == "/{year}/{month}/{slug}/"


def test_old_permalinks_kept_or_redirected(imported) -> None:
    _src, out, result = imported
    post = out / "2021/02/writing-a-generator/index.html"
    assert post.exists()
    html = post.read_text()
    assert 'in <a href="/category/python/">Python</a>, ' in html
    assert '<a href="/category/til-deep-learning/">TIL: deep learning</a>' in html
    assert '<a href="/tag/gpu/" rel="tag">GPU</a>' in html
    # the renamed post lives at its new slug; its old URL redirects there
    assert (out / "2020/11/renamed-later/index.html").exists()
    redirect = (out / "2020/11/original-name/index.html").read_text()
    assert 'url=/2020/11/renamed-later/"' in redirect
    assert result.aliases == 1
    assert (out / "about/index.html").exists()


def test_statuses(imported) -> None:
    src, out, result = imported
    everything = "".join(p.read_text() for p in out.rglob("*.html"))
    assert "Half written" not in everything  # draft
    assert "Thrown away" not in everything and not list(src.glob("posts/*thrown*"))  # trash
    assert "Scheduled" not in everything  # future
    assert (src / "posts/2021-03-01-half-written.md").read_text().count("draft: true") == 1
    assert result.posts == 4 and result.pages == 1 and result.skipped == 1


def test_body_conversion(imported) -> None:
    _src, out, _result = imported
    html = (out / "2021/02/writing-a-generator/index.html").read_text()
    assert "<p>First paragraph<br>\nwith a line break.</p>" in html
    assert '<span class="k">def</span>' in html  # [sourcecode] -> fenced -> Pygments
    assert '<span class="nb">echo</span>' in html  # [code lang=bash]
    assert "&lt;b&gt;hi&lt;/b&gt;" in html
    assert "<li>two</li>" in html
    # imported HTML is sanitised
    assert "onclick" not in html and "alert(" not in html and "<script" not in html
    assert "Final words." in html
    index = (out / "index.html").read_text()
    assert "[ Read more ]" in index and "Second paragraph" in index
    assert "def hello" not in index


def test_comments_exported_with_threading_and_status(imported) -> None:
    src, _out, result = imported
    data = json.loads((src / "comments.json").read_text())["comments"]
    by_id = {c["wordpress_id"]: c for c in data}
    assert set(by_id) == {100, 101, 102}  # spam and trash dropped
    assert by_id[101]["parent_wordpress_id"] == 100
    assert by_id[102]["status"] == "pending" and by_id[100]["status"] == "approved"
    assert all(c["post_path"] == "/2021/02/writing-a-generator/" for c in data)
    assert result.dropped_comments == 2


def test_attachments_listed(imported) -> None:
    src, _out, result = imported
    assert result.attachments == [
        ("diagram.png", "https://old.example.com/wp-content/uploads/2021/02/diagram.png")
    ]
    assert "uploads/2021/02/diagram.png\tdiagram.png" in (src / "attachments.txt").read_text()


def test_entities_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.xml"
    evil.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "\n<rss><channel><title>&x;</title></channel></rss>\n"
    )
    with pytest.raises(WxrError):
        import_wordpress(evil, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_not_an_export(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<rss><channel><title>x</title></channel></rss>")
    with pytest.raises(WxrError, match="not a WXR"):
        import_wordpress(bad, tmp_path / "site")


def test_wpautop() -> None:
    text = "one\ntwo\n\n<div>block</div>\n\nthree<!--more-->four\n\n<pre>a\n\nb</pre>"
    assert wpautop(text) == (
        "<p>one<br />\ntwo</p>\n\n<div>block</div>\n\n<p>three</p>\n\n<!--more-->\n\n"
        "<p>four</p>\n\n<pre>a\n\nb</pre>\n"
    )


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_older_wxr_versions(tmp_path: Path, version: str) -> None:
    old = tmp_path / "old.xml"
    old.write_text(
        WXR.read_text().replace("wordpress.org/export/1.2/", f"wordpress.org/export/{version}/")
    )
    result = import_wordpress(old, tmp_path / "site")
    assert (result.posts, result.pages, result.comments, result.aliases) == (4, 1, 2, 1)
    text = (tmp_path / "site/posts/2020-11-30-renamed-later.md").read_text()
    assert "summary: A teaser" in text
