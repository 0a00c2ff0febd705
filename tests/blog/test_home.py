"""The header's "Blog" link opens a page about the blog, not a bare list of comments."""

from __future__ import annotations

from typing import Any


def test_blog_page_says_where_the_blog_is_and_how_to_write_it(make_app: Any) -> None:
    app = make_app(blog_site_url="https://news.example.org", base_url="https://club.example.org")
    page = app.test_client().get("/blog/").get_data(as_text=True)
    assert '<a href="https://news.example.org">' in page
    assert "clubstack blog init" in page and "clubstack blog build" in page
    # the value to put in site.toml's comments_url, from the configured base URL
    assert "https://club.example.org/blog" in page
    assert "No comments yet." in page


def test_blog_page_without_a_blog_says_what_to_set(client: Any) -> None:
    page = client.get("/blog/").get_data(as_text=True)
    assert "CLUBSTACK_BLOG_SITE_URL" in page
