"""Pygments lexers that find the next token in one regex match instead of one per rule.

A Pygments RegexLexer tries the rules of its current state one after the other at each
position: one regex call per rule tried, most of them failing, which made lexing the largest
part of a clean build. Here the consecutive rules of a state are joined into one alternation,
each rule in a group of its own, so the regex engine tries them in the same order in C and the
group that matched names the rule. The alternation holds only the rules that can start with the
next character (worked out from each rule's parsed regex), so a letter does not try the string,
number and operator rules. Rules that cannot be joined safely (back-references, whose group
numbers would shift; ASCII or locale flags) are tried on their own between the joined runs, so
the first rule to match is always the one Pygments would pick, and the tokens, states and error
recovery are Pygments' own: the token stream is the same (tests/blog/test_lexing.py compares
them on every lexer Pygments has that this takes over).

Why by hand: no library does this, and Pygments' lexing was the largest part of a clean
build's CPU time (the same highlighting Pelican does); docs/benchmarks.md has the figures.

Lexers whose own loop wraps RegexLexer's (the C family re-types names in its tokens) run that
loop over the fast one; lexers with a loop that does not (ExtendedRegexLexer) stay as they are.

The gate. This is the one module of clubstack that uses private internals of these two
libraries:

- Python's regex parser (``re._parser``, ``re._constants``), to work out which characters a
  rule can start with. It belongs to the Python version: used only on PYTHON_TESTED (run here
  on 3.11; 3.12 and 3.13 keep the same parser and opcodes, and PARSER_PROBE checks that at
  import).
- Pygments' compiled rules (``RegexLexer._tokens``, the ``(match, action, new_state)`` triples
  its own loop runs) and, for lexers that wrap RegexLexer's loop, that loop's function rebound
  with other globals (``__globals__``), because the wrapping loop names ``RegexLexer`` itself
  and no subclass can reach in. Used only on PYGMENTS_TESTED; pyproject.toml bounds Pygments
  below the end of that range, so an upgrade past it is a deliberate change that re-runs
  tests/blog/test_lexing.py (it passed on 2.17.2, 2.19.2 and 2.21.0).

Outside those versions, or if the parser no longer answers a known question the known way
(PARSER_PROBE), ``faster`` returns the lexer unchanged: plain Pygments, the same tokens and
HTML, only slower (tests/blog/test_lexing_gate.py forces that fallback and compares). ``INTERNALS``
says which path this process takes.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import pygments
from pygments.lexer import Lexer, RegexLexer
from pygments.token import Error, Token, Whitespace

# [first, last) tested versions; see the module docstring.
PYTHON_TESTED = ((3, 11), (3, 14))
PYGMENTS_TESTED = ((2, 17), (2, 22))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


if PYTHON_TESTED[0] <= sys.version_info[:2] < PYTHON_TESTED[1]:
    from re import _constants as sre  # type: ignore[attr-defined]  # the parse tree's opcodes
    from re import _parser as sre_parse  # type: ignore[attr-defined]  # the regex parser behind re.compile
else:  # pragma: no cover - another Python: the public path
    sre = sre_parse = None

# Tokens are instances of one class; Pygments' loop tells them from callbacks by that type.
_TOKEN_TYPE = type(Token)

# A rule as Pygments keeps it: (pattern.match, action, new_state).
Rule = tuple[Callable[..., Any], Any, Any]
# One regex of some joined rules, with the rule behind each top group (None: no rule fits).
Entry = tuple[Callable[..., Any] | None, dict[int, Rule]]

_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")
_LEADING_FLAGS = re.compile(r"^\(\?([imsx]+)\)")
_SCOPED_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))
_ASCII = [chr(code) for code in range(128)]
_CLASS_ESCAPES = (
    {}
    if sre is None
    else {
        sre.CATEGORY_DIGIT: r"\d",
        sre.CATEGORY_NOT_DIGIT: r"\D",
        sre.CATEGORY_SPACE: r"\s",
        sre.CATEGORY_NOT_SPACE: r"\S",
        sre.CATEGORY_WORD: r"\w",
        sre.CATEGORY_NOT_WORD: r"\W",
    }
)
# Characters that share one regex: each group's costs a compile, and a lowercase letter and a
# digit each rule out most of a state's rules (strings, operators, comments) already.
_CHAR_GROUP = {
    char: frozenset(group)
    for group in ("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789")
    for char in group
}
_REPEATS = () if sre is None else (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
_ZERO_WIDTH = () if sre is None else (sre.AT, sre.ASSERT, sre.ASSERT_NOT)


def _alternative(pattern: re.Pattern[str]) -> str | None:
    """The rule's regex as a self-contained alternative carrying its own flags, or None."""
    if pattern.flags & (re.ASCII | re.LOCALE) or _BACKREFERENCE.search(pattern.pattern):
        return None
    text = pattern.pattern
    while match := _LEADING_FLAGS.match(text):  # already in pattern.flags; scoped below
        text = text[match.end() :]
    flags = "".join(letter for flag, letter in _SCOPED_FLAGS if pattern.flags & flag)
    if pattern.flags & re.VERBOSE:
        text += "\n"  # a trailing comment must not swallow the closing parenthesis
    return f"(?{flags}:{text})"  # the joined regex itself has none of these flags


# --- which characters can a rule's match start with? -------------------------------------------
# Answers are sets of ASCII characters, always a superset of the truth; None means "any" (or "not
# sure"). A rule that can match the empty string can match before any character: None.


@lru_cache(maxsize=4096)
def _ascii_matching(regex: str, ignorecase: bool) -> frozenset[str]:
    compiled = re.compile(regex, re.IGNORECASE if ignorecase else 0)
    return frozenset(char for char in _ASCII if compiled.match(char))


def _first(items: Any, ignorecase: bool) -> tuple[set[str] | None, bool]:
    """(first characters, whether the sequence can match empty) of a parsed sequence."""
    found: set[str] = set()
    for op, arg in items:
        chars, empty = _first_of(op, arg, ignorecase)
        if chars is None:
            return None, False
        found |= chars
        if not empty:
            return found, False
    return found, True


def _first_of(op: Any, arg: Any, ignorecase: bool) -> tuple[set[str] | None, bool]:
    if op is sre.LITERAL:
        if not ignorecase:
            return ({chr(arg)} if arg < 128 else set()), False
        return set(_ascii_matching(re.escape(chr(arg)), ignorecase)), False
    if op is sre.IN:
        parts = []
        for item, value in arg:
            if item is sre.NEGATE:
                parts.append("^")
            elif item is sre.LITERAL:
                parts.append(re.escape(chr(value)))
            elif item is sre.RANGE:
                parts.append(f"{re.escape(chr(value[0]))}-{re.escape(chr(value[1]))}")
            elif item is sre.CATEGORY and value in _CLASS_ESCAPES:
                parts.append(_CLASS_ESCAPES[value])
            else:
                return None, False
        return set(_ascii_matching(f"[{''.join(parts)}]", ignorecase)), False
    if op is sre.SUBPATTERN:
        _group, add_flags, _del_flags, items = arg
        return _first(items, ignorecase or bool(add_flags & re.IGNORECASE))
    if op is sre.ATOMIC_GROUP:
        return _first(arg, ignorecase)
    if op is sre.BRANCH:
        found: set[str] = set()
        can_be_empty = False
        for items in arg[1]:
            chars, empty = _first(items, ignorecase)
            if chars is None:
                return None, False
            found |= chars
            can_be_empty = can_be_empty or empty
        return found, can_be_empty
    if op in _REPEATS:
        low, _high, items = arg
        chars, empty = _first(items, ignorecase)
        return chars, empty or low == 0
    if op in _ZERO_WIDTH:  # anchors and lookarounds consume nothing; ignoring them widens
        return set(), True
    return None, False  # any character, a negated literal, a group reference...


def _first_chars(pattern: re.Pattern[str]) -> frozenset[str] | None:
    try:
        tree = sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:  # a parser we do not know: no dispatch for this rule
        return None
    chars, empty = _first(tree.data, bool(pattern.flags & re.IGNORECASE))
    return None if chars is None or empty else frozenset(chars)


class _Joined:
    """Consecutive joinable rules of a state. For each next character, one regex of just the
    rules that can start with it, in their order (made when first needed), so the regex engine
    does not try forty rules that cannot match there."""

    def __init__(self, run: list[tuple[str, Rule]], joined: re.Pattern[str]) -> None:
        self.run = run
        self.starts = [_first_chars(rule[0].__self__) for _, rule in run]  # type: ignore[attr-defined]
        self.by_char: dict[str, Entry] = {}
        everything = tuple(range(len(run)))
        self._by_rules: dict[tuple[int, ...], Entry] = {everything: self._entry(joined, run)}

    def entry(self, char: str) -> Entry:
        if char and char < "\x80":
            group = _CHAR_GROUP.get(char) or frozenset(char)
            fits = tuple(
                i
                for i, start in enumerate(self.starts)
                if start is None or not group.isdisjoint(start)
            )
        else:  # past the end, or beyond ASCII: every rule
            fits = tuple(range(len(self.run)))
        entry = self._by_rules.get(fits)
        if entry is None:
            entry = self._by_rules[fits] = self._join(fits)
        self.by_char[char] = entry
        return entry

    def _join(self, fits: tuple[int, ...]) -> Entry:
        if not fits:
            return None, {}
        chosen = [self.run[i] for i in fits]
        return self._entry(_compile_run(chosen), chosen)

    @staticmethod
    def _entry(joined: re.Pattern[str], chosen: list[tuple[str, Rule]]) -> Entry:
        by_group: dict[int, Rule] = {}
        group = 1
        for _, rule in chosen:
            by_group[group] = rule
            group += 1 + rule[0].__self__.groups  # type: ignore[attr-defined]
        return joined.match, by_group


def _compile_run(run: list[tuple[str, Rule]]) -> re.Pattern[str]:
    return re.compile("|".join(f"({alternative})" for alternative, _ in run))


# A step: the joined rules (their per-character table and the _Joined), or one rule alone.
Step = tuple[dict[str, Entry] | None, "_Joined | Rule"]


def _steps(rules: list[Rule]) -> list[Step]:
    steps: list[Step] = []
    run: list[tuple[str, Rule]] = []

    def close_run() -> None:
        if len(run) == 1:
            steps.append((None, run[0][1]))
        elif run:
            try:
                everything = _compile_run(run)
            except re.error:  # e.g. two rules naming a group alike
                steps.extend((None, rule) for _, rule in run)
            else:
                joined = _Joined(list(run), everything)
                steps.append((joined.by_char, joined))
        run.clear()

    for rule in rules:
        alternative = _alternative(rule[0].__self__)  # type: ignore[attr-defined]
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


def _tokens(
    self: RegexLexer, text: str, stack: tuple[str, ...] = ("root",)
) -> Iterator[tuple[int, Any, str]]:
    plan: dict[str, list[Step]] = type(self)._plan
    pos = 0
    statestack = list(stack)
    steps = plan[statestack[-1]]
    while True:
        for table, found in steps:
            if table is None:
                rexmatch, action, new_state = found  # type: ignore[misc]
                m = rexmatch(text, pos)
                if not m:
                    continue
            else:
                char = text[pos : pos + 1]
                matcher, by_group = table.get(char) or found.entry(char)  # type: ignore[union-attr]
                if matcher is None:
                    continue
                m = matcher(text, pos)
                if not m:
                    continue
                group = m.lastindex  # the top group of the rule that matched closes last
                rexmatch, action, new_state = by_group[group]
                if type(action) is _TOKEN_TYPE:
                    yield pos, action, m.group(group)
                    action = None
                elif action is not None:
                    m = rexmatch(text, pos)  # callbacks read the rule's own group numbers
            if action is not None:
                if type(action) is _TOKEN_TYPE:
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

    def get_tokens_unprocessed(
        self, text: str, stack: tuple[str, ...] = ("root",)
    ) -> Iterator[tuple[int, Any, str]]:
        if "_plan" in type(self).__dict__:
            return _tokens(self, text, stack)
        return RegexLexer.get_tokens_unprocessed(self, text, stack)  # a lexer not made here


def _over_joined_loop(method: Callable[..., Any]) -> Callable[..., Any]:
    """The lexer's own loop, unchanged, except that the `RegexLexer.get_tokens_unprocessed` it
    calls is the fast loop: the same code object with `RegexLexer` rebound in its globals."""
    code = method.__code__
    rebound = types.FunctionType(
        code,
        {**method.__globals__, "RegexLexer": _JoinedRegexLexer},
        method.__name__,
        method.__defaults__,
        method.__closure__,
    )
    rebound.__kwdefaults__ = method.__kwdefaults__
    return rebound


def _wraps_regex_loop(method: Any) -> bool:
    return isinstance(method, types.FunctionType) and "RegexLexer" in method.__code__.co_names


@lru_cache(maxsize=128)
def _fast_class(cls: type[RegexLexer]) -> type[RegexLexer]:
    own = cls.get_tokens_unprocessed
    loop = _tokens if own is RegexLexer.get_tokens_unprocessed else _over_joined_loop(own)
    # The token definitions Pygments compiled for the lexer's own class (an instance exists).
    tokendefs = cls._tokens
    return type(
        cls.__name__,
        (cls,),
        {
            "get_tokens_unprocessed": loop,
            "_tokens": tokendefs,
            "_plan": _Plan(tokendefs),
            "__module__": cls.__module__,
        },
    )


# A regex and the characters its match can start with, as the parser must work them out.
PARSER_PROBE = (r"(?:ab|[c-e]\d)x*|(?i:f)|(?=g)h|\d+", frozenset("acdefFh0123456789"))


def internals_fit(python: tuple[int, int], pygments_version: str) -> bool:
    """Whether the private path may run on these versions (see the module docstring)."""
    if not PYTHON_TESTED[0] <= python < PYTHON_TESTED[1] or sre_parse is None:
        return False
    if not PYGMENTS_TESTED[0] <= _version(pygments_version) < PYGMENTS_TESTED[1]:
        return False
    try:
        return _first_chars(re.compile(PARSER_PROBE[0])) == PARSER_PROBE[1]
    except Exception:  # the parser changed shape: the public path
        return False


# "joined" (the fast loop) or "pygments" (plain lexers); tests set it to force the fallback.
INTERNALS = "joined" if internals_fit(sys.version_info[:2], pygments.__version__) else "pygments"


def faster(lexer: Lexer) -> Lexer:
    """The same lexer on the joined-rules loop, when it runs RegexLexer's loop and the gate
    (module docstring) lets the private path run; otherwise the lexer itself."""
    if INTERNALS != "joined":
        return lexer
    cls = type(lexer)
    if not isinstance(lexer, RegexLexer) or getattr(cls, "token_variants", False):
        return lexer
    own = cls.get_tokens_unprocessed
    if own is not RegexLexer.get_tokens_unprocessed and not _wraps_regex_loop(own):
        return lexer
    return _fast_class(cls)(**lexer.options)  # type: ignore[arg-type]  # classes hash by identity
