"""The attack suite's own footing: two members over HTTP really are two accounts."""

from __future__ import annotations


def test_two_members_over_http_see_their_own_account(member_a, member_b, visitor):
    assert "alice@example.org" in member_a.get("/account").text
    assert "bob@example.org" in member_b.get("/account").text
    assert "alice@example.org" not in member_b.get("/account").text
    anonymous = visitor().get("/account")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login")
