"""The gate around lexing.py's private internals: only on tested versions, and its fallback
(plain Pygments) gives the same tokens and HTML."""

from __future__ import annotations

import pytest
from pygments.lexers import get_lexer_by_name

from clubstack.blog.lexing import faster
from tests.blog.test_lexing import COMMON, SAMPLES, tokens

FALLBACK_POST = "".join(
    f"```{name}\n{SAMPLES[i % len(SAMPLES)]}\n```\n\n" for i, name in enumerate(COMMON)
)


def test_the_private_path_runs_only_on_tested_versions() -> None:
    from clubstack.blog import lexing

    assert lexing.internals_fit((3, 11), "2.21.0")
    assert not lexing.internals_fit((3, 10), "2.21.0")  # re._parser was sre_parse
    assert not lexing.internals_fit((3, 14), "2.21.0")
    assert not lexing.internals_fit((3, 11), "2.22.0")
    assert not lexing.internals_fit((3, 11), "3.0.0")
    assert not lexing.internals_fit((3, 11), "2.16.1")


def test_forced_fallback_gives_the_same_tokens_and_html(monkeypatch: pytest.MonkeyPatch) -> None:
    from clubstack.blog import lexing, render

    assert lexing.INTERNALS == "joined"  # this test environment is inside the tested range
    fast_tokens = {
        name: tokens(faster(get_lexer_by_name(name, stripnl=False, ensurenl=True)), FALLBACK_POST)
        for name in COMMON
    }
    render._lexer.cache_clear()
    fast_html = render.render_markdown(FALLBACK_POST).html

    monkeypatch.setattr(lexing, "INTERNALS", "pygments")
    render._lexer.cache_clear()
    try:
        for name in COMMON:
            plain = get_lexer_by_name(name, stripnl=False, ensurenl=True)
            assert faster(plain) is plain  # the public path: Pygments' own lexer
            assert tokens(plain, FALLBACK_POST) == fast_tokens[name], name
        assert render.render_markdown(FALLBACK_POST).html == fast_html
        assert type(render._lexer("c")) is type(get_lexer_by_name("c"))
    finally:
        render._lexer.cache_clear()
    assert 'class="highlight"' in fast_html and fast_html.count("<pre>") == len(COMMON)
