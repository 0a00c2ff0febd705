"""Extraction, refanging, normalising and de-duplication of indicators in pasted text."""

from __future__ import annotations

import pytest

from clubstack.lookup.indicators import (
    IndicatorError,
    Kind,
    defang,
    extract,
    parse_one,
    refang,
)


def pairs(text: str) -> list[tuple[str, str]]:
    return [(str(i.kind), i.value) for i in extract(text)]


def test_alert_text_with_every_kind_defanged() -> None:
    text = """
    ALERT 4711: user clicked hxxps://login-micros0ft[.]com/owa/?id=42 then beaconed to
    185.220.101[.]4 and 2001:db8::1. Phish came from ceo(at)corp-mail[.]example;
    attachment invoice.pdf (md5 44D88612FEA8A8F36DE82E1278ABB02F,
    sha1 3395856ce81f2b7382dee72602f798b642f14140,
    sha256 275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f).
    """
    assert pairs(text) == [
        ("url", "https://login-micros0ft.com/owa/?id=42"),
        ("ipv4", "185.220.101.4"),
        ("ipv6", "2001:db8::1"),
        ("email", "ceo@corp-mail.example"),
        ("md5", "44d88612fea8a8f36de82e1278abb02f"),
        ("sha1", "3395856ce81f2b7382dee72602f798b642f14140"),
        ("sha256", "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"),
    ]


def test_each_indicator_keeps_the_text_as_written() -> None:
    """The preview's "As written" column: the analyst's own spelling, defanged or not."""
    text = (
        "Phish from ceo(at)plusall[.]example[.]com via hxxps://rebind[.]example[.]com/x, "
        "hosts GOOD.example.com. and db01 [.] internal, 185.220.101[.]4 and "
        "http[:]//a[.]b.example/p?q=1, md5 44D88612FEA8A8F36DE82E1278ABB02F"
    )
    assert [(i.value, i.original) for i in extract(text)] == [
        ("ceo@plusall.example.com", "ceo(at)plusall[.]example[.]com"),
        ("https://rebind.example.com/x", "hxxps://rebind[.]example[.]com/x"),
        ("good.example.com", "GOOD.example.com"),
        ("db01.internal", "db01 [.] internal"),
        ("185.220.101.4", "185.220.101[.]4"),
        ("http://a.b.example/p?q=1", "http[:]//a[.]b.example/p?q=1"),
        ("44d88612fea8a8f36de82e1278abb02f", "44D88612FEA8A8F36DE82E1278ABB02F"),
    ]
    assert parse_one("evil(.)example").original == "evil(.)example"


@pytest.mark.parametrize(
    ("defanged", "plain"),
    [
        ("hxxp://evil[.]com/x", "http://evil.com/x"),
        ("hXXps[:]//evil(.)com", "https://evil.com"),
        ("fxp://files{.}evil[dot]com", "ftp://files.evil.com"),
        ("user[at]example[.]org", "user@example.org"),
        ("user(@)example\\.org", "user@example.org"),
        ("10[.]0[.]0[.]1", "10.0.0.1"),
        ("example。com", "example.com"),
    ],
)
def test_refang(defanged: str, plain: str) -> None:
    assert refang(defanged) == plain


def test_any_tld_internal_and_reserved_too() -> None:
    text = "hosts: db01.internal, intranet.corp, web.test, nas.home.arpa and printer.lan."
    assert pairs(text) == [
        ("domain", "db01.internal"),
        ("domain", "intranet.corp"),
        ("domain", "web.test"),
        ("domain", "nas.home.arpa"),
        ("domain", "printer.lan"),
    ]


def test_file_names_are_not_domains_but_real_tlds_stay() -> None:
    found = pairs("dropped payload.exe, report.pdf, notes.txt; also got.zip and movie.mov")
    assert found == [("domain", "got.zip"), ("domain", "movie.mov")]


def test_normalising_case_trailing_dots_idna_and_dedup() -> None:
    text = "Example.COM. example.com EXAMPLE[.]com bücher.de xn--bcher-kva.de BÜCHER.DE"
    found = extract(text)
    assert [(str(i.kind), i.value) for i in found] == [
        ("domain", "example.com"),
        ("domain", "xn--bcher-kva.de"),
    ]
    assert found[1].display == "bücher.de"


def test_things_that_look_alike_but_are_not_indicators() -> None:
    text = (
        "version 1.2.3.4.5, build 10.0.19045, time 12:30:45, MAC 00:1a:2b:3c:4d:5e, "
        "e.g. this, i.e. that, 999.1.1.1, a 33-hex 44d88612fea8a8f36de82e1278abb02fa"
    )
    assert pairs(text) == []


def test_urls_keep_their_paths_and_swallow_hosts_and_hashes() -> None:
    text = (
        "(see https://evil.com/dl/44d88612fea8a8f36de82e1278abb02f.bin), "
        "http://[2001:db8::2]:8443/x. and <http://Example.COM/a_(b)>"
    )
    assert pairs(text) == [
        ("url", "https://evil.com/dl/44d88612fea8a8f36de82e1278abb02f.bin"),
        ("url", "http://[2001:db8::2]:8443/x"),
        ("url", "http://example.com/a_(b)"),
    ]


def test_ipv6_forms() -> None:
    text = "fe80::1 and [2001:DB8:0:0:0:0:0:1] and ::ffff:192.0.2.1"
    assert pairs(text) == [
        ("ipv6", "fe80::1"),
        ("ipv6", "2001:db8::1"),
        ("ipv6", "::ffff:c000:201"),
    ]


def test_defang_for_display() -> None:
    assert defang("https://evil.com/a.b") == "hxxps://evil[.]com/a.b"
    assert defang("bad@evil.com") == "bad[@]evil[.]com"
    assert defang("2001:db8::1") == "2001[:]db8[:][:]1"
    assert parse_one("evil.com").defanged() == "evil[.]com"


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        ("example[.]com", Kind.DOMAIN, "example.com"),
        ("HTTP://Example.COM", Kind.URL, "http://example.com/"),
        ("  8.8.8.8 ", Kind.IPV4, "8.8.8.8"),
        ("[::1]", Kind.IPV6, "::1"),
        ("A@Example.ORG", Kind.EMAIL, "A@example.org"),
        ("D41D8CD98F00B204E9800998ECF8427E", Kind.MD5, "d41d8cd98f00b204e9800998ecf8427e"),
        ("db01.internal.", Kind.DOMAIN, "db01.internal"),
    ],
)
def test_parse_one(raw: str, kind: Kind, value: str) -> None:
    indicator = parse_one(raw)
    assert (indicator.kind, indicator.value) == (kind, value)


@pytest.mark.parametrize("raw", ["", "hello", "1.2.3", "http://", "x" * 300 + ".com", "a..b.com"])
def test_parse_one_refuses(raw: str) -> None:
    with pytest.raises(IndicatorError):
        parse_one(raw)
