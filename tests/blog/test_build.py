"""The generator on a small fixture site: files, URLs, pages, feeds, incremental builds."""

import re
import shutil
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from clubstack.blog import build as build_mod
from clubstack.blog.build import build

FIXTURE = Path(__file__).parent / "fixture_site"
NOW = datetime(2026, 1, 1, tzinfo=UTC)

EXPECTED = {
    "index.html",
    "page/2/index.html",
    "404.html",
    "robots.txt",
    "sitemap.xml",
    "feed.xml",
    "atom.xml",
    "humans.txt",
    "theme/style.css",
    "theme/pygments.css",
    "2021/02/a-new-website/index.html",
    "2021/03/second-post-more/index.html",
    "2020/12/christmas/index.html",
    "about/index.html",
    "2021/02/new-site.html",
    "archives/index.html",
    "2020/index.html",
    "2021/index.html",
    "2020/12/index.html",
    "2021/02/index.html",
    "2021/03/index.html",
    "category/blogging/index.html",
    "category/blogging/feed.xml",
    "category/blogging/atom.xml",
    "category/meta/index.html",
    "category/meta/feed.xml",
    "category/meta/atom.xml",
    "category/website-design/index.html",
    "category/website-design/feed.xml",
    "category/website-design/atom.xml",
    "tag/python/index.html",
    "tag/jinja/index.html",
}


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    return src


def run(src: Path, out: Path, **kw):
    kw.setdefault("cache_dir", src.parent / "cache")
    return build(src, out, now=NOW, **kw)


def test_fixture_builds_expected_files_and_urls(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(site, out)
    assert result.ok, result.errors
    assert set(files(out)) == EXPECTED
    post = (out / "2021/02/a-new-website/index.html").read_text()
    assert "Posted on 16 February 2021 in Blogging, Meta, Website design" in text_of(post)
    assert '<a href="/category/website-design/">Website design</a>' in post
    assert '<h2 id="why">' in post and 'href="#why"' in post  # anchor + TOC entry
    assert '<span class="k">def</span>' in post  # Pygments classes
    assert "<table>" in post and 'class="footnotes"' in post
    assert "&lt;b&gt;not bold" in post  # code is escaped, not HTML
    assert 'rel="canonical" href="https://blog.example.org/2021/02/a-new-website/"' in post
    # neighbours
    assert 'href="/2021/03/second-post-more/"' in post and 'href="/2020/12/christmas/"' in post


def test_index_pagination_excerpts_and_read_more(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    index = (out / "index.html").read_text()
    # newest first, two per page
    assert index.index("Second post &amp; more") < index.index("A new website")
    assert "Christmas" not in text_of(index.split("<main")[1])
    assert "I have moved the blog" in index and "Because" not in index  # cut at <!--more-->
    assert '<a href="/2021/02/a-new-website/">[ Read more ]</a>' in index
    assert 'href="/page/2/"' in index
    page2 = (out / "page/2/index.html").read_text()
    assert "Christmas" in page2 and 'href="/"' in page2
    assert "Read more" not in page2.split("<main")[1]  # no marker, whole post shown


def test_drafts_and_future_posts_only_on_request(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    everything = b"".join(files(out).values())
    assert b"Unfinished thoughts" not in everything and b"From the future" not in everything
    out2 = tmp_path / "out2"
    run(site, out2, drafts=True, cache_dir=tmp_path / "cache2")
    assert (out2 / "2021/01/unfinished-thoughts/index.html").exists()
    assert (out2 / "2999/01/from-the-future/index.html").exists()


def test_raw_html_dropped_from_markdown_posts(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    page = (out / "2021/03/second-post-more/index.html").read_text()
    assert "<script>alert" not in page and "alert(" not in page


def test_site_template_override_and_static(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    assert "Lost? (site override)" in (out / "404.html").read_text()
    assert (out / "humans.txt").read_text() == "User-agent-test\n"


def test_alias_redirect_points_to_post(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    page = (out / "2021/02/new-site.html").read_text()
    assert 'url=/2021/02/a-new-website/"' in page
    assert 'rel="canonical" href="https://blog.example.org/2021/02/a-new-website/"' in page


def test_feeds_parse_with_dates_and_links(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    for name in ("feed.xml", "atom.xml"):
        feed = feedparser.parse((out / name).read_bytes())
        assert not feed.bozo, feed.bozo_exception
        assert feed.feed.title == "Fixture Blog"
        assert feed.feed.link == "https://blog.example.org/"
        links = [e.link for e in feed.entries]
        assert links == [
            "https://blog.example.org/2021/03/second-post-more/",
            "https://blog.example.org/2021/02/a-new-website/",
            "https://blog.example.org/2020/12/christmas/",
        ]
        first = feed.entries[1]
        assert first.title == "A new website"
        published = first.published_parsed
        assert tuple(published[:5]) == (2021, 2, 16, 18, 30)
        assert "Because" in (first.get("content") or [first])[0].get(
            "value", first.get("description", "")
        )
    cat = feedparser.parse((out / "category/meta/atom.xml").read_bytes())
    assert [e.title for e in cat.entries] == ["A new website", "Christmas"]
    assert cat.feed.link == "https://blog.example.org/category/meta/"
    rss = feedparser.parse((out / "feed.xml").read_bytes())
    # updated date of the second post is the feed's last build date
    assert tuple(rss.feed.updated_parsed[:4]) == (2021, 3, 5, 10)


def test_sitemap_and_robots(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = [e.text for e in ET.parse(out / "sitemap.xml").findall("s:url/s:loc", ns)]
    assert "https://blog.example.org/2021/02/a-new-website/" in locs
    assert "https://blog.example.org/about/" in locs
    assert not any("unfinished" in (loc or "") for loc in locs)
    assert "Sitemap: https://blog.example.org/sitemap.xml" in (out / "robots.txt").read_text()


def test_broken_posts_reported_with_file_and_line(site: Path, tmp_path: Path) -> None:
    (site / "posts/bad-yaml.md").write_text("---\ntitle: ok\ndate: 2021-01-01\ntags: [a\n---\n")
    (site / "posts/no-title.md").write_text("---\ndate: 2021-01-01\n---\nbody\n")
    (site / "posts/bad-date.md").write_text("---\ntitle: x\n\ndate: yesterday\n---\nbody\n")
    (site / "posts/dup.md").write_text(
        "---\ntitle: Christmas\ndate: 2020-12-26 08:00\nslug: christmas\n---\nx\n"
    )
    result = run(site, tmp_path / "out")
    got = {(e.path, e.line): e.reason for e in result.errors}
    assert ("posts/bad-yaml.md", 5) in got or ("posts/bad-yaml.md", 4) in got
    assert got[("posts/no-title.md", 1)] == "title is missing"
    assert got[("posts/bad-date.md", 4)].startswith("bad date")
    dup = [e for e in result.errors if "already used" in e.reason]
    assert len(dup) == 1 and "/2020/12/christmas/" in dup[0].reason
    # the good posts were still built
    assert (tmp_path / "out/2021/02/a-new-website/index.html").exists()


def test_incremental_rebuild_equals_clean_build(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    again = run(site, out)
    assert again.written == [] and again.parsed == 0

    # change one post's body: only pages showing it are rewritten
    post = site / "posts/2020-12-25-christmas.md"
    post.write_text(post.read_text().replace("Merry Christmas.", "Happy holidays."))
    changed = run(site, out)
    assert changed.parsed == 1
    assert "2020/12/christmas/index.html" in changed.written
    assert "2021/02/a-new-website/index.html" not in changed.written  # neighbour title same
    assert "index.html" not in changed.written  # not on page 1
    assert "page/2/index.html" in changed.written
    assert "about/index.html" not in changed.written
    assert "archives/index.html" not in changed.written  # titles and dates unchanged

    # more kinds of change: new post, deleted post, retitled post, template edit
    (site / "posts/new.md").write_text(
        "---\ntitle: Brand new\ndate: 2021-04-01\ncategories: [Fresh]\n---\nHello\n"
    )
    (site / "posts/2021-03-01-second.md").unlink()
    p = site / "posts/2021-02-16-a-new-website.md"
    p.write_text(p.read_text().replace("title: A new website", "title: A newer website"))
    (site / "templates/404.html").write_text(
        (site / "templates/404.html").read_text().replace("Lost?", "Gone?")
    )
    run(site, out)

    clean = tmp_path / "clean"
    run(site, clean, cache_dir=tmp_path / "fresh-cache")
    assert files(out) == files(clean)
    assert not (out / "2021/03/second-post-more").exists()


def test_parallel_build_equals_serial_build(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(12):
        (site / f"posts/gen-{i}.md").write_text(
            f"---\ntitle: Generated {i}\ndate: 2019-01-{i + 1:02d}\ntags: [t{i % 3}]\n---\n"
            f"Post {i}\n\n```python\nprint({i})\n```\n"
        )
    run(site, tmp_path / "serial", workers=1, cache_dir=tmp_path / "c1")
    monkeypatch.setattr(build_mod, "PARALLEL_THRESHOLD", 2)
    run(site, tmp_path / "parallel", workers=2, cache_dir=tmp_path / "c2")
    assert files(tmp_path / "serial") == files(tmp_path / "parallel")


def test_no_change_rebuild_restores_a_deleted_output(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    assert run(site, out).written == []
    (out / "tag/jinja/index.html").unlink()
    again = run(site, out)
    assert again.written == ["tag/jinja/index.html"]


def test_lost_body_cache_renders_the_posts_again(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    post = site / "posts/2020-12-25-christmas.md"
    post.write_text(post.read_text().replace("Merry Christmas.", "Happy holidays."))
    for name in ("bodies.sqlite3", "bodies.sqlite3-wal", "bodies.sqlite3-shm"):
        (site.parent / "cache" / name).unlink(missing_ok=True)
    rebuilt = run(site, out)
    sources = list(site.glob("posts/*.md")) + list(site.glob("pages/*.md"))
    assert rebuilt.ok and rebuilt.parsed == len(sources)  # every body rendered again
    clean = tmp_path / "clean"
    run(site, clean, cache_dir=tmp_path / "fresh-cache")
    assert files(out) == files(clean)


def test_future_post_appears_once_due(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(site, out)
    assert not (out / "2999/01/from-the-future/index.html").exists()
    later = build(site, out, now=datetime(2999, 1, 2, tzinfo=UTC), cache_dir=site.parent / "cache")
    assert "2999/01/from-the-future/index.html" in later.written


def _write_bodies(path: str, worker: int) -> None:
    from clubstack.blog.bodies import BodyStore

    BodyStore(Path(path)).put_many((f"{worker}-{i}", f"<p>{i}</p>", None) for i in range(50))


def test_workers_share_a_fresh_body_cache_without_locking_each_other_out(tmp_path: Path) -> None:
    import multiprocessing
    import sqlite3

    from clubstack.blog.bodies import BodyStore

    path = tmp_path / "bodies.sqlite3"
    store = BodyStore(path)
    store.hand_over()  # what the build does before it forks its workers
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_write_bodies, args=(str(path), n)) for n in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert [worker.exitcode for worker in workers] == [0] * 6
    assert len(store.keys()) == 300
