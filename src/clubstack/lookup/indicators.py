"""Find indicators (URLs, domains, IPs, e-mail addresses, hashes) in pasted text.

Analysts paste alert texts where indicators are defanged (``hxxp://``, ``example[.]com``,
``user(at)example.com``) so that nobody clicks them by accident. We refang, extract,
normalise (case, trailing dots, IDNA) and de-duplicate, keeping the order of first
appearance so the result table reads like the input.

Any TLD is accepted, internal and reserved ones too (``.internal``, ``.corp``, ``.test``):
analysts look up their own hosts. Only names whose last label is a well-known file
extension and *not* a real TLD (``invoice.pdf``, ``payload.exe``) are taken for file names.
"""

from __future__ import annotations

import bisect
import contextlib
import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit, urlunsplit

import idna
from publicsuffixlist import PublicSuffixList

_PSL = PublicSuffixList(accept_unknown=False)


class Kind(enum.StrEnum):
    URL = "url"
    DOMAIN = "domain"
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    EMAIL = "email"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"

    @property
    def is_ip(self) -> bool:
        return self in (Kind.IPV4, Kind.IPV6)

    @property
    def is_hash(self) -> bool:
        return self in (Kind.MD5, Kind.SHA1, Kind.SHA256)


class IndicatorError(ValueError):
    """The text is not one indicator we understand."""


@dataclass(frozen=True)
class Indicator:
    """One normalised indicator. ``value`` is the canonical (ASCII, IDNA) form."""

    kind: Kind
    value: str
    original: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.value}"

    @cached_property
    def host(self) -> str | None:
        """The DNS name or IP address the indicator points at (None for hashes)."""
        if self.kind in (Kind.DOMAIN, Kind.IPV4, Kind.IPV6):
            return self.value
        if self.kind is Kind.EMAIL:
            return self.value.rpartition("@")[2]
        if self.kind is Kind.URL:
            host = urlsplit(self.value).hostname or ""
            return host or None
        return None

    @property
    def host_is_ip(self) -> bool:
        return self.host is not None and _is_ip(self.host)

    @property
    def display(self) -> str:
        """Human form: IDNA names shown in Unicode."""
        if self.kind is Kind.DOMAIN:
            return _to_unicode(self.value)
        if self.kind is Kind.EMAIL:
            local, _, domain = self.value.rpartition("@")
            return f"{local}@{_to_unicode(domain)}"
        return self.value

    def defanged(self) -> str:
        return defang(self.display)


# --- refanging -------------------------------------------------------------------------

_REFANG_RULES: list[tuple[re.Pattern[str], str]] = [
    # schemes: hxxp, hXXps, hxxxp, h**p, fxp, meow-style "hxxp[:]//"
    (re.compile(r"\bh(?:xx|\*\*|XX|xX|Xx|xxx|tt)p(s?)(?=\[?:\]?//|\[://\])", re.I), r"http\1"),
    (re.compile(r"\bfxp(s?)(?=\[?:\]?//|\[://\])", re.I), r"ftp\1"),
    (re.compile(r"\[://\]|\(://\)"), "://"),
    (re.compile(r"\[:\](?=//)"), ":"),
    # dots: [.] (.) {.} [dot] (dot) {dot} \. and the ideographic full stop
    (re.compile(r"\s?(?:\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\{dot\})\s?", re.I), "."),
    (re.compile(r"\\\."), "."),
    (re.compile(r"[\u3002\uff0e\uff61]"), "."),
    # at signs: [at] (at) {at} [@] (@)
    (re.compile(r"\s?(?:\[at\]|\(at\)|\{at\}|\[@\]|\(@\))\s?", re.I), "@"),
]


def refang(text: str) -> str:
    """Undo the usual defanging conventions."""
    for pattern, replacement in _REFANG_RULES:
        text = pattern.sub(replacement, text)
    return text


Edit = tuple[int, int, int, int]  # (start, end) of a replacement in a rule's output, in its input


def _refang_rule(text: str, pattern: re.Pattern[str], replacement: str) -> tuple[str, list[Edit]]:
    """One refanging rule applied, and where each of its replacements went."""
    edits: list[Edit] = []
    shift = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal shift
        new = match.expand(replacement)
        begin, end = match.span()
        edits.append((begin + shift, begin + shift + len(new), begin, end))
        shift += len(new) - (end - begin)
        return new

    return pattern.sub(replace, text), edits


class _Refanged:
    """Refanged text that can say where a stretch of it came from, so an indicator found in
    it can be shown as the analyst wrote it (``hxxp://evil[.]example``), not refanged.

    A span is walked back through each rule's replacements, a binary search per rule, so
    nothing per character of the text is kept."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._passes: list[tuple[list[int], list[Edit]]] = []
        text = source
        for pattern, replacement in _REFANG_RULES:
            text, edits = _refang_rule(text, pattern, replacement)
            if edits:
                self._passes.append(([edit[0] for edit in edits], edits))
        self.text = text

    def original(self, begin: int, end: int) -> str:
        """The source text behind ``text[begin:end]``."""
        if end <= begin:
            return ""
        for starts, edits in reversed(self._passes):
            begin = _back(starts, edits, begin)[0]
            end = _back(starts, edits, end - 1)[1]
        return self.source[begin:end]


def _back(starts: list[int], edits: list[Edit], char: int) -> tuple[int, int]:
    """The span of a rule's input that character ``char`` of its output stands for."""
    index = bisect.bisect_right(starts, char) - 1
    if index < 0:
        return char, char + 1
    _, new_end, old_start, old_end = edits[index]
    if char < new_end:
        return old_start, old_end
    moved = char - new_end + old_end
    return moved, moved + 1


def defang(value: str) -> str:
    """Make an indicator unclickable for display: ``hxxp://example[.]com``."""
    value = re.sub(r"^http", "hxxp", value, flags=re.I)
    value = re.sub(r"^ftp", "fxp", value, flags=re.I)
    value = value.replace("@", "[@]")
    # defang every dot of the host part only, keep paths readable
    scheme, sep, rest = value.partition("://")
    if sep:
        host, slash, tail = rest.partition("/")
        return f"{scheme}{sep}{host.replace('.', '[.]')}{slash}{tail}"
    if _is_ip(value) and ":" in value:
        return value.replace(":", "[:]")
    return value.replace(".", "[.]")


# --- patterns --------------------------------------------------------------------------

_URL_RE = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`{}|\\^]+", re.I)
_LABEL = r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?)"
_TLD = r"(?:xn--[a-z0-9-]{2,59}|[^\W\d_]{2,63})"
_DOMAIN = rf"(?:{_LABEL}\.)+{_TLD}"
_DOMAIN_RE = re.compile(rf"(?<![\w.@-]){_DOMAIN}\.?(?![\w@-]|\.[^\W_])", re.I)
_EMAIL_RE = re.compile(
    rf"(?<![\w.!#$%&'*+/=?^`{{|}}~-])([\w!#$%&'*+/=?^`{{|}}~-]+(?:\.[\w!#$%&'*+/=?^`{{|}}~-]+)*)"
    rf"@({_DOMAIN})\.?(?![\w-]|\.[^\W_])",
    re.I,
)
_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d|\w)")
_IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:]|\.\d)",
    re.I,
)
_HASH_RE = re.compile(r"(?<![0-9a-z])(?:[0-9a-f]{64}|[0-9a-f]{40}|[0-9a-f]{32})(?![0-9a-z])", re.I)
_HASH_KINDS = {32: Kind.MD5, 40: Kind.SHA1, 64: Kind.SHA256}

# Extensions that turn up in alert texts as file names. A name ending in one of these is a
# domain only if the extension is also a real TLD (.zip, .mov, .sh ... stay domains).
_FILE_EXTENSIONS = frozenset(
    [
        "exe",
        "dll",
        "sys",
        "scr",
        "bat",
        "cmd",
        "ps1",
        "psm1",
        "vbs",
        "vbe",
        "js",
        "jse",
        "wsf",
        "hta",
        "lnk",
        "msi",
        "msp",
        "jar",
        "class",
        "py",
        "pyc",
        "sh",
        "elf",
        "so",
        "bin",
        "dat",
        "tmp",
        "log",
        "txt",
        "csv",
        "tsv",
        "json",
        "xml",
        "yaml",
        "yml",
        "ini",
        "cfg",
        "conf",
        "doc",
        "docx",
        "docm",
        "xls",
        "xlsx",
        "xlsm",
        "ppt",
        "pptx",
        "pdf",
        "rtf",
        "odt",
        "ods",
        "html",
        "htm",
        "php",
        "asp",
        "aspx",
        "jsp",
        "png",
        "jpg",
        "jpeg",
        "gif",
        "bmp",
        "svg",
        "ico",
        "iso",
        "img",
        "vhd",
        "vhdx",
        "rar",
        "7z",
        "gz",
        "tgz",
        "bz2",
        "xz",
        "tar",
        "cab",
        "eml",
        "msg",
        "pst",
        "ost",
        "db",
        "sqlite",
        "bak",
        "old",
        "dmp",
        "pcap",
        "pcapng",
        "evtx",
        "md",
        "rst",
        "c",
        "h",
        "cpp",
        "hpp",
        "go",
        "rs",
        "rb",
        "pl",
        "lua",
    ]
)

_TRAILING_PUNCT = ".,;:!?'\"*"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _to_unicode(name: str) -> str:
    try:
        return idna.decode(name)
    except idna.IDNAError:
        return name


def normalise_domain(name: str) -> str:
    """Lower-case, drop the trailing dot, IDNA-encode. Raises IndicatorError."""
    name = name.strip().rstrip(".")
    if not name or ".." in name:
        raise IndicatorError(f"not a domain name: {name!r}")
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        # idna is strict about things DNS allows (underscores, some punycode); accept
        # plain ASCII names that are valid LDH-ish labels anyway.
        if not name.isascii():
            raise IndicatorError(f"not a valid international domain name: {name!r}") from None
        ascii_name = name.lower()
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > 253:
        raise IndicatorError(f"not a domain name: {name!r}")
    for label in labels:
        if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
            raise IndicatorError(f"not a domain name: {name!r}")
        if not re.fullmatch(r"[a-z0-9_-]+", label):
            raise IndicatorError(f"not a domain name: {name!r}")
    if not re.search(r"[a-z]", labels[-1]):
        raise IndicatorError(f"not a domain name (numeric TLD): {name!r}")
    return ascii_name


def is_public_name(name: str) -> bool:
    """True when the name ends in a TLD of the public DNS (not .internal, .corp, .test)."""
    return _PSL.publicsuffix(name) is not None


def registered_domain(name: str) -> str | None:
    """example.co.uk for www.example.co.uk; None for internal names."""
    return _PSL.privatesuffix(name)


def _looks_like_file_name(ascii_name: str) -> bool:
    tld = ascii_name.rsplit(".", 1)[-1]
    return tld in _FILE_EXTENSIONS and not is_public_name(ascii_name)


def normalise_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise IndicatorError(f"not a URL: {url!r}") from exc
    if parts.scheme.lower() not in ("http", "https", "ftp") or not host:
        raise IndicatorError(f"not a URL: {url!r}")
    if _is_ip(host.strip("[]")):
        ip = ipaddress.ip_address(host.strip("[]"))
        host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    else:
        host = normalise_domain(host) if "." in host.rstrip(".") else host.lower().rstrip(".")
    netloc = host if port is None else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}{':' + parts.password if parts.password else ''}@{netloc}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def normalise_email(address: str) -> str:
    local, sep, domain = address.strip().rpartition("@")
    if not sep or not local or len(local) > 64:
        raise IndicatorError(f"not an e-mail address: {address!r}")
    return f"{local}@{normalise_domain(domain)}"


def normalise_ip(value: str) -> tuple[Kind, str]:
    try:
        ip = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError as exc:
        raise IndicatorError(f"not an IP address: {value!r}") from exc
    return (Kind.IPV4 if ip.version == 4 else Kind.IPV6), ip.compressed


# --- extraction ------------------------------------------------------------------------


def _strip_url(url: str) -> str:
    while url and url[-1] in _TRAILING_PUNCT + ")]>":
        last = url[-1]
        if last == ")" and url.count("(") >= url.count(")"):
            break
        if last == "]" and url.count("[") >= url.count("]"):
            break
        url = url[:-1]
    return url


def _mask(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def extract(text: str) -> list[Indicator]:
    """Every indicator in ``text``, refanged, normalised and de-duplicated in order.

    Each keeps its ``original``: the text exactly as written, defanged or not."""
    refanged = _Refanged(text)
    text = refanged.text
    found: list[tuple[int, Indicator]] = []

    def add(pos: int, indicator: Indicator) -> None:
        found.append((pos, indicator))

    # URLs first: their hosts and paths must not be found again as domains or hashes.
    for match in list(_URL_RE.finditer(text)):
        raw = _strip_url(match.group(0))
        with contextlib.suppress(IndicatorError):
            original = refanged.original(match.start(), match.start() + len(raw))
            add(match.start(), Indicator(Kind.URL, normalise_url(raw), original))
        text = _mask(text, match.start(), match.start() + len(raw))

    for match in list(_EMAIL_RE.finditer(text)):
        raw = match.group(0)
        try:
            email = Indicator(Kind.EMAIL, normalise_email(raw), refanged.original(*match.span()))
        except IndicatorError:
            continue
        add(match.start(), email)
        text = _mask(text, match.start(), match.end())

    for match in list(_IPV6_RE.finditer(text)):
        raw = match.group(0)
        if raw.count(":") < 2 or not _is_ip(raw):
            continue
        kind, value = normalise_ip(raw)
        add(match.start(), Indicator(kind, value, refanged.original(*match.span())))
        text = _mask(text, match.start(), match.end())

    for match in list(_IPV4_RE.finditer(text)):
        raw = match.group(0)
        if _is_ip(raw):
            kind, value = normalise_ip(raw)
            add(match.start(), Indicator(kind, value, refanged.original(*match.span())))
        text = _mask(text, match.start(), match.end())

    for match in list(_HASH_RE.finditer(text)):
        raw = match.group(0)
        original = refanged.original(*match.span())
        add(match.start(), Indicator(_HASH_KINDS[len(raw)], raw.lower(), original))
        text = _mask(text, match.start(), match.end())

    for match in _DOMAIN_RE.finditer(text):
        raw = match.group(0)
        try:
            name = normalise_domain(raw)
        except IndicatorError:
            continue
        if _looks_like_file_name(name):
            continue
        end = match.start() + len(raw.rstrip("."))
        add(match.start(), Indicator(Kind.DOMAIN, name, refanged.original(match.start(), end)))

    found.sort(key=lambda item: item[0])
    return dedupe(indicator for _, indicator in found)


def dedupe(indicators: Iterable[Indicator]) -> list[Indicator]:
    seen: set[str] = set()
    unique: list[Indicator] = []
    for indicator in indicators:
        if indicator.key not in seen:
            seen.add(indicator.key)
            unique.append(indicator)
    return unique


def parse_one(value: str) -> Indicator:
    """Parse a single indicator given on its own (API list item, CLI argument)."""
    raw = value
    value = refang(value.strip())
    if not value:
        raise IndicatorError("empty indicator")
    if re.fullmatch(r"[0-9a-fA-F]+", value) and len(value) in _HASH_KINDS:
        return Indicator(_HASH_KINDS[len(value)], value.lower(), raw)
    if _is_ip(value.strip("[]")):
        kind, normal = normalise_ip(value)
        return Indicator(kind, normal, raw)
    if re.match(r"(?i)(?:https?|ftp)://", value):
        return Indicator(Kind.URL, normalise_url(value), raw)
    if "@" in value:
        return Indicator(Kind.EMAIL, normalise_email(value), raw)
    if re.fullmatch(rf"{_DOMAIN}\.?", value, re.I):
        return Indicator(Kind.DOMAIN, normalise_domain(value), raw)
    raise IndicatorError(f"not a URL, domain, IP address, e-mail address or hash: {raw!r}")
