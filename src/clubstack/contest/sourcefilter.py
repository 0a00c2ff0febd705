"""The source filter: what a submitted C file may not contain, with the reason shown.

The filter is the contest's rule (the sandbox is the defence): the reference WhibOx server's
substring rules (``REFERENCE_STRINGS``, ``REFERENCE_PATTERNS``) plus ours as whole words
(``EXTRA_WORDS``), directives, digraphs and trigraphs; docs/contest.md has the table.
Identifiers starting with ``_`` are allowed: symbols a submission defines are made local to
its object at link time (judge.py), so none can replace libc's before main.

Two passes. ``check_source`` reads the file as submitted (after joining backslash-newline
splices, which the preprocessor would join too). ``check_preprocessed`` reads the compiler's
own preprocessed output (``gcc -E``), keeping only the lines the line markers attribute
to the submission, so that a keyword built by token pasting (``ex ## tern``) is caught as
well. ``check_compiler_output`` rejects any "implicit declaration" diagnostic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clubstack.contest.errors import SourceRejected

SOURCE_NAME = "submission.c"

# What the reference server (whibox_contest_submission_server, commands.py) refuses: these
# strings anywhere in the file, once the one allowed "#include <gmp.h>" line is taken out.
# They are matched as plain substrings, as there: "extern" in "external" is refused as well.
REFERENCE_STRINGS: dict[str, str] = {
    "#include": "no includes other than the one allowed line",
    "extern": "no external declarations",
    "_FILE__": "no file-name macros",
    "__DATE__": "no date or time macros",
    "__TIME": "no date or time macros",
    "__STDC_": "no __STDC_ macros",
    "__asm__": "no inline assembly",
    "syscall": "no system calls",
    ".init_array": "no code that runs before main",
    ".fini_array": "no code that runs after main",
    ".init": "no code that runs before main",
    ".fini": "no code that runs after main",
    ".ctors": "no code that runs before main",
    ".dtors": "no code that runs after main",
}
REFERENCE_PATTERNS: dict[str, str] = {
    r"\sasm\W": "no inline assembly",
    r"#\s*include": "no includes other than the one allowed line",
}
_REFERENCE_RES = [(re.compile(p), why) for p, why in REFERENCE_PATTERNS.items()]

# Our additions, matched as whole identifiers. Attribute names count in their __x__ spelling
# too (``__attribute__((__constructor__))``).
EXTRA_WORDS: dict[str, str] = {
    "asm": "no inline assembly",
    "__asm": "no inline assembly",
    "section": "no section tricks",
    "constructor": "no code that runs before main",
    "destructor": "no code that runs after main",
    "alias": "no symbol tricks",
    "weak": "no symbol tricks",
    "weakref": "no symbol tricks",
    "ifunc": "no symbol tricks",
    "symver": "no symbol tricks",
    "_Pragma": "no pragmas",
    "__BASE_FILE__": "no file-name macros",
    "__FILE_NAME__": "no file-name macros",
    "__INCLUDE_LEVEL__": "no file-name macros",
    "__TIMESTAMP__": "no date or time macros",
}
_ATTRIBUTE_WORDS = {
    "section",
    "constructor",
    "destructor",
    "alias",
    "weak",
    "weakref",
    "ifunc",
    "symver",
}
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECTION_NAMES_RE = re.compile(r"\.preinit_array")
_DIRECTIVE_RE = re.compile(r"^\s*#\s*([A-Za-z_]\w*)(.*)$", re.MULTILINE)
_ALLOWED_DIRECTIVES = {
    "define",
    "undef",
    "if",
    "ifdef",
    "ifndef",
    "elif",
    "else",
    "endif",
    "error",
    "warning",
    "include",
}
_LINE_MARKER_RE = re.compile(r'^#\s+(\d+)\s+"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class FilterRules:
    allowed_include: str | None  # the one permitted #include line, e.g. "#include <gmp.h>"
    max_bytes: int


def _join_splices(text: str) -> str:
    return re.sub(r"\\\r?\n", "", text)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def check_source(source: bytes, rules: FilterRules) -> str:
    """Raise SourceRejected with a reason, or return the source as text."""
    if len(source) > rules.max_bytes:
        raise SourceRejected(f"the source is larger than {rules.max_bytes} bytes")
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceRejected("the source is not UTF-8 text") from exc
    if "\0" in text:
        raise SourceRejected("the source contains a NUL byte")
    joined = _join_splices(text)
    if "%:" in joined:
        raise SourceRejected("digraph '%:' (an alternative spelling of '#') is not allowed")
    if "??" in joined:
        raise SourceRejected("trigraphs ('??') are not allowed")
    without_include = joined
    for match in _DIRECTIVE_RE.finditer(joined):
        name, rest = match.group(1), match.group(2)
        line = _line_of(joined, match.start())
        if name not in _ALLOWED_DIRECTIVES:
            raise SourceRejected(f"line {line}: directive #{name} is not allowed")
        if name == "include":
            wanted = rules.allowed_include
            normal = "#include " + rest.strip()
            if wanted is None or normal != wanted or without_include is not joined:
                allowed = f" (only '{wanted}' once)" if wanted else ""
                raise SourceRejected(f"line {line}: #include is not allowed{allowed}")
            # the reference takes the allowed line out before looking for forbidden strings;
            # keep the newline so line numbers stay right
            without_include = joined[: match.start()] + joined[match.end() :]
    raw = text
    if without_include is not joined and rules.allowed_include:
        raw = text.replace(rules.allowed_include, "", 1)
    _check_strings(raw, "")
    _check_strings(without_include, "")
    _check_words(without_include, "")
    return text


def _check_strings(text: str, where: str) -> None:
    """The reference server's rules: plain substrings and two patterns."""
    for needle, reason in REFERENCE_STRINGS.items():
        pos = text.find(needle)
        if pos >= 0:
            line = _line_of(text, pos)
            raise SourceRejected(f"{where}line {line}: '{needle}' is not allowed: {reason}")
    for pattern, reason in _REFERENCE_RES:
        found = pattern.search(text)
        if found:
            line = _line_of(text, found.end() - 1)
            shown = found.group(0).strip()
            raise SourceRejected(f"{where}line {line}: '{shown}' is not allowed: {reason}")


def _check_words(text: str, where: str) -> None:
    for match in _WORD_RE.finditer(text):
        word = match.group(0)
        reason = EXTRA_WORDS.get(word)
        bare = word[2:-2] if word.startswith("__") and word.endswith("__") else None
        if reason is None and bare in _ATTRIBUTE_WORDS:
            reason = EXTRA_WORDS[bare]
        if reason is not None:
            line = _line_of(text, match.start())
            raise SourceRejected(f"{where}line {line}: '{word}' is not allowed: {reason}")
    found = _SECTION_NAMES_RE.search(text)
    if found:
        line = _line_of(text, found.start())
        raise SourceRejected(f"{where}line {line}: '{found.group(0)}': no section tricks")


def check_preprocessed(preprocessed: str) -> None:
    """Apply the word rules to the submission's own lines of ``gcc -E`` output."""
    current = ""
    lineno = 0
    for line in preprocessed.splitlines():
        marker = _LINE_MARKER_RE.match(line)
        if marker:
            current = marker.group(2)
            lineno = int(marker.group(1))
            continue
        if current.endswith(SOURCE_NAME):
            try:
                _check_strings(line, "after preprocessing, ")
                _check_words(line, "after preprocessing, ")
            except SourceRejected as exc:
                raise SourceRejected(exc.message.replace("line 1:", f"line {lineno}:", 1)) from None
        lineno += 1


def check_compiler_output(stderr: str) -> None:
    for line in stderr.splitlines():
        if "implicit declaration" in line or "implicitly declaring" in line:
            raise SourceRejected(f"the compiler reports an implicit declaration: {line.strip()}")
