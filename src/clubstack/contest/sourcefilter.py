"""The source filter: what a submitted C file may not contain, with the reason shown.

Two passes. ``check_source`` reads the file as submitted (after joining backslash-newline
splices, which the preprocessor would join too). ``check_preprocessed`` reads the compiler's
own preprocessed output (``-save-temps``), keeping only the lines the line markers attribute
to the submission, so that a keyword built by token pasting (``ex ## tern``) is caught as
well. ``check_compiler_output`` rejects any "implicit declaration" diagnostic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clubstack.contest.errors import SourceRejected

SOURCE_NAME = "submission.c"

# Words (identifiers) that may not appear at all, and why.
_FORBIDDEN_WORDS: dict[str, str] = {
    "extern": "no external declarations",
    "asm": "no inline assembly",
    "__asm": "no inline assembly",
    "__asm__": "no inline assembly",
    "syscall": "no system calls",
    "section": "no section tricks",
    "constructor": "no code that runs before main",
    "destructor": "no code that runs after main",
    "alias": "no symbol tricks",
    "weak": "no symbol tricks",
    "weakref": "no symbol tricks",
    "ifunc": "no symbol tricks",
    "symver": "no symbol tricks",
    "_Pragma": "no pragmas",
    "__FILE__": "no file-name macros",
    "__BASE_FILE__": "no file-name macros",
    "__FILE_NAME__": "no file-name macros",
    "__INCLUDE_LEVEL__": "no file-name macros",
    "__DATE__": "no date or time macros",
    "__TIME__": "no date or time macros",
    "__TIMESTAMP__": "no date or time macros",
}
# Identifiers starting with an underscore belong to the implementation: a submission defining
# __libc_start_main, _start or _init would run before the harness installs its filter.
_UNDERSCORE_OK = {
    "_Bool", "_Complex", "_Static_assert", "_Alignas", "_Alignof", "_Noreturn", "_Generic",
    "_Thread_local", "_Atomic", "__attribute__", "__attribute", "__inline__", "__inline",
    "__restrict__", "__restrict", "__volatile__", "__const__", "__signed__", "__extension__",
    "__typeof__", "__alignof__",
}
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STDC_RE = re.compile(r"__STDC_\w*")
_SECTION_NAMES_RE = re.compile(r"\.(preinit_array|init_array|fini_array|init|fini|ctors|dtors)\b")
_DIRECTIVE_RE = re.compile(r"^\s*#\s*([A-Za-z_]\w*)(.*)$", re.MULTILINE)
_ALLOWED_DIRECTIVES = {"define", "undef", "if", "ifdef", "ifndef", "elif", "else", "endif",
                       "error", "warning", "include"}
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
    seen_include = False
    for match in _DIRECTIVE_RE.finditer(joined):
        name, rest = match.group(1), match.group(2)
        line = _line_of(joined, match.start())
        if name not in _ALLOWED_DIRECTIVES:
            raise SourceRejected(f"line {line}: directive #{name} is not allowed")
        if name == "include":
            wanted = rules.allowed_include
            normal = "#include " + rest.strip()
            if wanted is None or normal != wanted or seen_include:
                allowed = f" (only '{wanted}' once)" if wanted else ""
                raise SourceRejected(f"line {line}: #include is not allowed{allowed}")
            before = joined[: match.start()].strip()
            if before and not _only_comments(before):
                raise SourceRejected(f"line {line}: '{wanted}' must be the first line")
            seen_include = True
    _check_words(joined, "")
    return text


def _only_comments(text: str) -> bool:
    return not re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.DOTALL).strip()


def _check_words(text: str, where: str) -> None:
    for match in _WORD_RE.finditer(text):
        word = match.group(0)
        reason = _FORBIDDEN_WORDS.get(word)
        if reason is None and _STDC_RE.fullmatch(word):
            reason = "no __STDC_ macros"
        if reason is None and word.startswith("_") and where == "" and \
                word not in _UNDERSCORE_OK and not word.startswith("__builtin_"):
            reason = "identifiers starting with '_' are reserved to the implementation"
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
                _check_words(line, "after preprocessing, ")
            except SourceRejected as exc:
                raise SourceRejected(
                    exc.message.replace("line 1:", f"line {lineno}:", 1)
                ) from None
        lineno += 1


def check_compiler_output(stderr: str) -> None:
    for line in stderr.splitlines():
        if "implicit declaration" in line or "implicitly declaring" in line:
            raise SourceRejected(f"the compiler reports an implicit declaration: {line.strip()}")
