"""Pygments lexers that find the next token in one regex match instead of one per rule.

A Pygments RegexLexer tries the rules of its current state one after the other at each
position: about 18 regex calls per token for Python code, which made lexing most of a clean
build. Here the consecutive rules of a state are joined into one alternation, each rule in a
group of its own, so the regex engine tries them in the same order in C and the group that
matched names the rule. Rules that cannot be joined safely (back-references, whose group
numbers would shift; ASCII or locale flags) are tried on their own between the joined runs,
so the first rule to match is always the one Pygments would pick, and the tokens, states and
error recovery are Pygments' own: the token stream is the same (tests/blog/test_lexing.py
compares them on every lexer the tests use).

Lexers whose own loop wraps RegexLexer's (the C family re-types names in its tokens) run that
loop over the fast one; lexers with a loop that does not (ExtendedRegexLexer) stay as they are.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from pygments.lexer import Lexer, RegexLexer
from pygments.token import Error, Whitespace, _TokenType

# A rule as Pygments keeps it: (pattern.match, action, new_state).
Rule = tuple[Callable[..., Any], Any, Any]
# A step: one joined regex and the rule behind each of its top groups, or one rule alone.
Step = tuple[Callable[..., Any] | None, dict[int, Rule] | Rule]

_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")
_LEADING_FLAGS = re.compile(r"^\(\?([imsx]+)\)")
_SCOPED_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))


def _alternative(pattern: re.Pattern[str]) -> str | None:
    """The rule's regex as a self-contained alternative carrying its own flags, or None."""
    if pattern.flags & (re.ASCII | re.LOCALE) or _BACKREFERENCE.search(pattern.pattern):
        return None
    text = pattern.pattern
    while match := _LEADING_FLAGS.match(text):  # already in pattern.flags; scoped below
        text = text[match.end():]
    flags = "".join(letter for flag, letter in _SCOPED_FLAGS if pattern.flags & flag)
    if pattern.flags & re.VERBOSE:
        text += "\n"  # a trailing comment must not swallow the closing parenthesis
    return f"(?{flags}:{text})"  # the joined regex itself has none of these flags


def _steps(rules: list[Rule]) -> list[Step]:
    steps: list[Step] = []
    run: list[tuple[str, Rule]] = []

    def close_run() -> None:
        if len(run) == 1:
            steps.append((None, run[0][1]))
        elif run:
            try:
                joined = re.compile("|".join(f"({alternative})" for alternative, _ in run))
            except re.error:
                steps.extend((None, rule) for _, rule in run)
            else:
                by_group: dict[int, Rule] = {}
                group = 1
                for _, rule in run:
                    by_group[group] = rule
                    group += 1 + rule[0].__self__.groups
                steps.append((joined.match, by_group))
        run.clear()

    for rule in rules:
        alternative = _alternative(rule[0].__self__)
        if alternative is None:
            close_run()
            steps.append((None, rule))
        else:
            run.append((alternative, rule))
    close_run()
    return steps


def _apply(new_state: Any, stack: list[str]) -> None:
    """Pygments' state transitions, as RegexLexer.get_tokens_unprocessed applies them."""
    if isinstance(new_state, tuple):
        for state in new_state:
            if state == "#pop":
                if len(stack) > 1:
                    stack.pop()
            elif state == "#push":
                stack.append(stack[-1])
            else:
                stack.append(state)
    elif isinstance(new_state, int):
        if abs(new_state) >= len(stack):
            del stack[1:]
        else:
            del stack[new_state:]
    elif new_state == "#push":
        stack.append(stack[-1])
    else:  # pragma: no cover - Pygments validates state definitions when it compiles them
        raise ValueError(f"wrong state def: {new_state!r}")


def _tokens(self: RegexLexer, text: str, stack: tuple[str, ...] = ("root",)
            ) -> Iterator[tuple[int, Any, str]]:
    plan: dict[str, list[Step]] = type(self)._plan  # type: ignore[attr-defined]
    pos = 0
    statestack = list(stack)
    steps = plan[statestack[-1]]
    while True:
        for matcher, found in steps:
            if matcher is None:
                rexmatch, action, new_state = found  # type: ignore[misc]
                m = rexmatch(text, pos)
                if not m:
                    continue
            else:
                m = matcher(text, pos)
                if not m:
                    continue
                group = m.lastindex  # the top group of the rule that matched closes last
                rexmatch, action, new_state = found[group]  # type: ignore[index]
                if type(action) is _TokenType:
                    yield pos, action, m.group(group)
                    action = None
                elif action is not None:
                    m = rexmatch(text, pos)  # callbacks read the rule's own group numbers
            if action is not None:
                if type(action) is _TokenType:
                    yield pos, action, m.group()
                else:
                    yield from action(self, m)
            pos = m.end()
            if new_state is not None:
                _apply(new_state, statestack)
                steps = plan[statestack[-1]]
            break
        else:
            if pos >= len(text):
                break
            if text[pos] == "\n":  # at the end of a line, back to the root state
                statestack = ["root"]
                steps = plan["root"]
                yield pos, Whitespace, "\n"
            else:
                yield pos, Error, text[pos]
            pos += 1


class _Plan(dict[str, list[Step]]):
    """The steps of each state, joined when the lexer first enters the state: compiling the
    big alternations costs milliseconds, and most code visits few of a lexer's states."""

    def __init__(self, tokendefs: dict[str, list[Rule]]) -> None:
        super().__init__()
        self.tokendefs = tokendefs

    def __missing__(self, state: str) -> list[Step]:
        steps = self[state] = _steps(self.tokendefs[state])
        return steps


class _JoinedRegexLexer(RegexLexer):
    """What `RegexLexer` names inside a wrapping loop (see _over_joined_loop)."""

    def get_tokens_unprocessed(  # type: ignore[override]
        self, text: str, stack: tuple[str, ...] = ("root",)
    ) -> Iterator[tuple[int, Any, str]]:
        if "_plan" in type(self).__dict__:
            return _tokens(self, text, stack)
        return RegexLexer.get_tokens_unprocessed(self, text, stack)  # a lexer not made here


def _over_joined_loop(method: Callable[..., Any]) -> Callable[..., Any]:
    """The lexer's own loop, unchanged, except that the `RegexLexer.get_tokens_unprocessed` it
    calls is the fast loop: the same code object with `RegexLexer` rebound in its globals."""
    code = method.__code__
    rebound = types.FunctionType(code, {**method.__globals__, "RegexLexer": _JoinedRegexLexer},
                                 method.__name__, method.__defaults__, method.__closure__)
    rebound.__kwdefaults__ = method.__kwdefaults__
    return rebound


def _wraps_regex_loop(method: Any) -> bool:
    return isinstance(method, types.FunctionType) and "RegexLexer" in method.__code__.co_names


@lru_cache(maxsize=128)
def _fast_class(cls: type[RegexLexer]) -> type[RegexLexer]:
    own = cls.get_tokens_unprocessed
    loop = _tokens if own is RegexLexer.get_tokens_unprocessed else _over_joined_loop(own)
    fast = type(cls.__name__, (cls,), {"get_tokens_unprocessed": loop,
                                       "__module__": cls.__module__})
    probe = fast()  # Pygments compiles the token definitions on the first instance
    fast._plan = _Plan(probe._tokens)  # type: ignore[attr-defined]
    return fast


def faster(lexer: Lexer) -> Lexer:
    """The same lexer on the joined-rules loop, when it runs RegexLexer's loop."""
    cls = type(lexer)
    if not isinstance(lexer, RegexLexer) or getattr(cls, "token_variants", False):
        return lexer
    own = cls.get_tokens_unprocessed
    if own is not RegexLexer.get_tokens_unprocessed and not _wraps_regex_loop(own):
        return lexer
    return _fast_class(cls)(**lexer.options)
