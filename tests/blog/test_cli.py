"""The CLI: new, build (exit codes, file:line errors), import-wordpress, serve."""

import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from clubstack.blog.cli import blog
from clubstack.blog.preview import PreviewServer

FIXTURE = Path(__file__).parent / "fixture_site"


def test_new_then_build(tmp_path: Path) -> None:
    src = tmp_path / "site"
    shutil.copytree(FIXTURE, src)
    runner = CliRunner()
    res = runner.invoke(blog, ["new", "Hello, World!", "--src", str(src)])
    assert res.exit_code == 0, res.output
    path = Path(res.output.strip())
    assert path.parent == src / "posts" and path.name.endswith("-hello-world.md")
    assert "draft: true" in path.read_text()
    out = tmp_path / "out"
    res = runner.invoke(blog, ["build", str(src), str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert not list(out.rglob("hello-world"))  # a draft
    res = runner.invoke(blog, ["build", str(src), str(tmp_path / "out2"), "--drafts", "-q"])
    assert res.exit_code == 0
    assert list((tmp_path / "out2").rglob("hello-world"))


def test_init_makes_a_site_that_builds_with_its_first_post(tmp_path: Path) -> None:
    src = tmp_path / "new site"
    runner = CliRunner()
    res = runner.invoke(
        blog,
        [
            "init",
            str(src),
            "--title",
            'Club "news"',
            "--author",
            "Ada",
            "--comments-url",
            "https://club.example.org/blog",
        ],
    )
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    res = runner.invoke(blog, ["build", str(src), str(out), "-q"])
    assert res.exit_code == 0, res.output
    post = next(out.rglob("hello-world/index.html")).read_text()
    assert "Hello, world" in post
    assert 'Club "news"' in (out / "index.html").read_text().replace("&#34;", '"').replace(
        "&quot;", '"'
    )
    # a second init over the same folder refuses and keeps what is there
    res = runner.invoke(blog, ["init", str(src)])
    assert res.exit_code == 1
    assert "holds a site already" in res.output
    assert "Club" in (src / "site.toml").read_text()


def test_new_without_a_site_says_how_to_make_one(tmp_path: Path) -> None:
    res = CliRunner().invoke(blog, ["new", "A title", "--src", str(tmp_path)])
    assert res.exit_code == 1
    assert "clubstack blog init" in res.output
    assert not (tmp_path / "posts").exists()


def test_build_fails_with_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "site"
    shutil.copytree(FIXTURE, src)
    (src / "posts/broken.md").write_text("---\ntitle: Broken\ndate: 2021-13-45\n---\nx\n")
    res = CliRunner().invoke(blog, ["build", str(src), str(tmp_path / "out")])
    assert res.exit_code == 1
    assert "posts/broken.md:3: bad date" in res.output
    assert (tmp_path / "out/2021/02/a-new-website/index.html").exists()


def test_build_without_site_toml(tmp_path: Path) -> None:
    res = CliRunner().invoke(blog, ["build", str(tmp_path), str(tmp_path / "out")])
    assert res.exit_code == 2 and "site.toml is missing" in res.output


def test_import_wordpress_command(tmp_path: Path) -> None:
    wxr = Path(__file__).parent / "fixture_wxr.xml"
    res = CliRunner().invoke(blog, ["import-wordpress", str(wxr), str(tmp_path / "site")])
    assert res.exit_code == 0, res.output
    assert "4 posts (1 drafts), 1 pages, 1 old URLs redirected" in res.output
    assert "2 comments, 1 awaiting moderation, 2 spam/trash dropped" in res.output
    again = CliRunner().invoke(blog, ["import-wordpress", str(wxr), str(tmp_path / "site")])
    assert again.exit_code == 1 and "already holds a site" in again.output


def test_serve_rebuilds_and_signals_reload(tmp_path: Path) -> None:
    src = tmp_path / "site"
    shutil.copytree(FIXTURE, src)
    out = tmp_path / "out"
    server = PreviewServer(src, out, port=0, drafts=False)
    server.rebuild()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        page = urllib.request.urlopen(f"{base}/2020/12/christmas/", timeout=5).read().decode()
        assert "Merry Christmas." in page and 'EventSource("/__reload")' in page
        try:
            urllib.request.urlopen(f"{base}/no/such/page/", timeout=5)
            raise AssertionError("expected a 404")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404 and "Lost? (site override)" in exc.read().decode()
        events = urllib.request.urlopen(f"{base}/__reload", timeout=10)
        assert events.readline() == b": connected\n"
        time.sleep(0.5)  # let the watcher settle
        post = src / "posts/2020-12-25-christmas.md"
        post.write_text(post.read_text().replace("Merry Christmas.", "Season's greetings."))
        events.readline()  # blank line after the comment
        assert events.readline() == b"data: reload\n"
        page = urllib.request.urlopen(f"{base}/2020/12/christmas/", timeout=5).read().decode()
        assert "Season&#39;s greetings." in page or "Season's greetings." in page
        events.close()
    finally:
        server.close()
